"""The spool on disk: what a crash can and cannot take from it.

A crash is simulated the way the disk would show it: the file cut back to what was fsynced
(`Durable` records which descriptors were fsynced and how long each file was then)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, List

import pytest

from tgsync_cli.core.codec import from_dict, to_dict
from tgsync_cli.core.events import ChatRef, MessageSeen, Person
from tgsync_cli.runtime.spool import Spool

CHAT = ChatRef(-100555, "supergroup", "Hill Repeats")
T0 = datetime(2025, 5, 1, 6, 0)


def event(i: int) -> MessageSeen:
    return MessageSeen(CHAT, Person(100 + i, first_name=f"r{i}"), T0 + timedelta(minutes=i))


def loaded(spool: Spool) -> List[int]:
    items, _bad = spool.load(from_dict)
    return [e.sender.id for e in items]


def test_an_append_after_a_torn_last_line_is_a_line_of_its_own(tmp_path):
    """A crash cut the last write short; the next append does not glue itself to the fragment:
    it is replayed, and only the fragment is kept aside in .bad with its line number."""
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([to_dict(event(0))])
    with open(spool.path, "ab") as f:
        f.write(json.dumps(to_dict(event(1))).encode()[:25])  # the torn write
    spool.append([to_dict(event(2))])

    assert loaded(spool) == [100, 102]
    assert spool.bad_path.read_bytes().startswith(b"2\t")


class Killed(BaseException):
    """The process dies here (not an OSError: nothing in the spool may catch it)."""


class Durable:
    """What the disk holds for sure: records every os.fsync (a file's bytes then, by inode; a
    directory's names then, and the inode each named) and can kill the process at the n-th one,
    before it syncs."""

    def __init__(self, directory: Path, kill_at: int = -1) -> None:
        self.directory, self.kill_at, self.calls = directory, kill_at, 0
        self.synced_bytes: Dict[int, bytes] = {}
        self.synced_names: Dict[str, Dict[str, int]] = {}  # directory -> {name: inode}
        self.synced_paths: List[str] = []
        self._fsync = os.fsync

    def fsync(self, fd: int) -> None:
        if self.calls == self.kill_at:
            raise Killed()
        self.calls += 1
        path = os.readlink(f"/proc/self/fd/{fd}")
        self.synced_paths.append(path)
        if os.path.isdir(path):
            self.synced_names[path] = {n: os.stat(os.path.join(path, n)).st_ino for n in os.listdir(path)}
        else:
            st = os.fstat(fd)
            with open(f"/proc/self/fd/{fd}", "rb") as f:  # opened for writing only: read anew
                self.synced_bytes[st.st_ino] = f.read(st.st_size)
        self._fsync(fd)

    def crash(self) -> None:
        """The directory as it comes back after a power cut: the names it held when last synced,
        each naming the file it named then, with the bytes that file had when last fsynced (a
        name never synced into the directory is gone; a rename never synced is undone)."""
        for p in self.directory.iterdir():
            p.unlink()
        for name, ino in (self.synced_names.get(str(self.directory)) or {}).items():
            (self.directory / name).write_bytes(self.synced_bytes.get(ino, b""))


def work(spool: Spool, acknowledged: List[int]) -> None:
    """Events appended one or two at a time, the spool compacted midway (as the pipeline does
    after a flush), more appended: `acknowledged` holds each one whose append returned."""
    for i in range(0, 6, 2):
        spool.append([to_dict(event(i))])
        acknowledged.append(100 + i)
        spool.append([to_dict(event(i + 1))])
        acknowledged.append(100 + i + 1)
        if i == 2:
            items, _ = spool.load(from_dict)
            spool.rewrite([to_dict(e) for e in items])


def test_a_crash_between_a_write_and_its_fsync_loses_only_what_was_not_acknowledged(tmp_path, monkeypatch):
    clean = Durable(tmp_path / "clean")
    (tmp_path / "clean").mkdir()
    monkeypatch.setattr(os, "fsync", clean.fsync)
    work(Spool(tmp_path / "clean" / "spool.jsonl"), [])
    assert clean.calls >= 8  # every append, the rewrite and the directory

    for kill_at in range(clean.calls):
        d = tmp_path / f"kill{kill_at}"
        d.mkdir()
        disk = Durable(d, kill_at)
        monkeypatch.setattr(os, "fsync", disk.fsync)
        acknowledged: List[int] = []
        with pytest.raises(Killed):
            work(Spool(d / "spool.jsonl"), acknowledged)
        monkeypatch.setattr(os, "fsync", disk._fsync)
        disk.crash()
        survived = loaded(Spool(d / "spool.jsonl"))
        assert set(acknowledged) <= set(survived), f"killed at fsync {kill_at}"
        assert survived == sorted(survived) and len(survived) <= len(acknowledged) + 1


def test_each_append_is_fsynced_and_so_is_the_directory_of_a_new_spool(tmp_path, monkeypatch):
    disk = Durable(tmp_path)
    monkeypatch.setattr(os, "fsync", disk.fsync)
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([to_dict(event(0))])
    spool.append([to_dict(event(1))])
    assert disk.synced_paths == [str(spool.path), str(tmp_path), str(spool.path)]
