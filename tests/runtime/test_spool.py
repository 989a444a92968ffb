"""The spool on disk: what a crash can and cannot take from it.

A crash is simulated the way the disk would show it: the file cut back to what was fsynced
(`Durable` records which descriptors were fsynced and how long each file was then)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, List

import pytest

from tgsync_cli.core.codec import from_dict, to_dict
from tgsync_cli.core.events import (BotStatusChanged, ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person,
                                    RosterEntry, RosterObserved)
from tgsync_cli.core.seen import SeenBuffer, SeenTimes
from tgsync_cli.ops.forget import forget_preview
from tgsync_cli.runtime.spool import Spool, merge_note, scrub, seen_buffer_docs, seen_docs
from tgsync_cli.stores import open_store

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


# -- last_seen notes: who wrote when, spooled at a stop and merged back at the next start ----------
def test_the_last_seen_times_a_stop_spooled_come_back_whole_at_the_next_start(tmp_path):
    """Newest, earliest and earliest-since-active of each writer survive the restart apart (each
    one decides a different field of the roster); a note with only its newest time (as the
    Celery queue spools it) comes back with nothing invented."""
    before = SeenBuffer()
    before.note(("club-a", 5), T0 + timedelta(minutes=1))
    before.note(("club-a", 5), T0 + timedelta(minutes=9))
    before.note_active_since(("club-a", 5), T0 + timedelta(minutes=4), made_active=True)
    before.note(("club-b", 6), T0 + timedelta(minutes=2))
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append(seen_buffer_docs(before))
    spool.append(seen_docs({("club-c", 7): T0 + timedelta(minutes=30)}))

    items, bad = spool.load(from_dict)
    after = SeenBuffer()
    for note in items:
        merge_note(after, note)

    assert bad == 0
    assert after.times() == {
        ("club-a", 5): SeenTimes(T0 + timedelta(minutes=9), T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)),
        ("club-b", 6): SeenTimes(T0 + timedelta(minutes=2), T0 + timedelta(minutes=2), T0 + timedelta(minutes=2)),
        ("club-c", 7): SeenTimes(T0 + timedelta(minutes=30)),
    }


def test_a_checkpoint_spools_only_the_writers_it_is_asked_for(tmp_path):
    buffer = SeenBuffer()
    buffer.note(("club-a", 5), T0)
    buffer.note(("club-a", 6), T0 + timedelta(minutes=1))
    assert [(d["club_id"], d["telegram_id"]) for d in seen_buffer_docs(buffer, [("club-a", 6)])] == [("club-a", 6)]


AT = "2025-05-01T06:00:00"


@pytest.mark.parametrize("line", [
    pytest.param({"type": "LastSeen", "club_id": 12, "telegram_id": 5, "at": AT}, id="club id not a string"),
    pytest.param({"type": "LastSeen", "club_id": "c", "telegram_id": True, "at": AT}, id="telegram id a boolean"),
    pytest.param({"type": "LastSeen", "club_id": "c", "telegram_id": "5", "at": AT}, id="telegram id a string"),
])
def test_a_last_seen_note_naming_no_member_is_kept_aside_with_the_reason_in_the_log(tmp_path, caplog, line):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([to_dict(event(0)), line, to_dict(event(1))])

    with caplog.at_level(logging.ERROR, logger="tgsync.spool"):
        assert loaded(spool) == [100, 101]

    assert spool.bad_path.read_bytes() == b"2\t" + (json.dumps(line) + "\n").encode()
    [message] = caplog.messages
    assert message == (f"{spool.path}:2: not a spooled event, kept in spool.jsonl.bad (ValueError: "
                       "LastSeen needs a club_id string and an integer telegram_id)")


@pytest.mark.parametrize("value", [[1, 2], "a string", 42, None])
def test_a_line_of_json_that_is_not_an_object_is_kept_aside(tmp_path, caplog, value):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([to_dict(event(0))])
    with open(spool.path, "ab") as f:
        f.write((json.dumps(value) + "\n").encode())

    with caplog.at_level(logging.ERROR, logger="tgsync.spool"):
        assert loaded(spool) == [100]

    assert spool.bad_path.read_bytes() == b"2\t" + (json.dumps(value) + "\n").encode()
    assert caplog.messages == [
        f"{spool.path}:2: not a spooled event, kept in spool.jsonl.bad (ValueError: not an object)"]
    assert loaded(spool) == [100] and spool.path.read_bytes() == (json.dumps(to_dict(event(0))) + "\n").encode()


# -- forget: what its preview counts is what its scrub erases -------------------------------------
ADMIN = 777
DANA = Person(ADMIN, first_name="Dana")
ILYA = Person(780, first_name="Ilya")


def line(ev: object) -> bytes:
    return (json.dumps(ev if isinstance(ev, dict) else to_dict(ev)) + "\n").encode()


def test_forget_counts_and_scrubs_the_same_lines_and_keeps_the_events_of_others(tmp_path):
    """Their own events and notes go; a kick they made and a join by their link stay with them
    erased; a line that only looks like them (their id as a word in a chat title, a note of
    someone else) is kept byte for byte; a damaged line or `.bad` line is dropped only when it
    holds their id as a number."""
    titled = ChatRef(-100555, "supergroup", "777 Club")
    spool_path = tmp_path / "pending-events.jsonl"
    kick = MemberStatusChanged(CHAT, ILYA, MemberState("kicked"), T0, actor=DANA, old=MemberState("member"))
    by_link = MemberStatusChanged(CHAT, ILYA, MemberState("member"), T0, actor=ILYA, invite_link="Dana's link",
                                  invited_by=ADMIN)
    listing = RosterObserved(CHAT, (RosterEntry(DANA, MemberState("administrator")),
                                    RosterEntry(ILYA, MemberState("member"))), T0)
    kept_as_is = [line(MessageSeen(titled, Person(100, first_name="r"), T0)),
                  line({"type": "LastSeen", "club_id": "c", "telegram_id": 100, "at": T0.isoformat()}),
                  b'{"damaged": 1, "by": 1777\n']
    spool_path.write_bytes(b"".join([
        line(MessageSeen(CHAT, DANA, T0)), kept_as_is[0], line(kick), line(by_link), kept_as_is[1],
        line({"type": "LastSeen", "club_id": "c", "telegram_id": ADMIN, "at": T0.isoformat()}),
        b'{"damaged": "' + b"777" + b'", \n', kept_as_is[2], line(listing),
        b'[{"id": 777, "is_bot": false}]\n',  # not an event at all, but it names them
        line(BotStatusChanged(CHAT, ILYA, MemberState("left"), MemberState("member"), T0,
                              bot=Person(ADMIN, True, "bot")))]))  # named where no field is emptied
    bad_path = tmp_path / "pending-events.jsonl.bad"
    bad_path.write_bytes(b"3\t{\"id\": 777, \n" + b"9\t{\"id\": 7770, \n")

    preview = forget_preview(open_store("memory:"), ADMIN, spool=spool_path)
    assert preview.spooled_events == 9
    assert scrub(spool_path, ADMIN) == 9

    erased = spool_path.read_bytes().splitlines(keepends=True)
    assert erased[0:1] + erased[3:5] == kept_as_is[:2] + kept_as_is[2:]
    assert [json.loads(x) for x in erased[1:3] + erased[5:]] == [
        {**to_dict(kick), "actor": None},
        {**to_dict(by_link), "invited_by": None, "invite_link": None},
        {**to_dict(listing), "entries": [to_dict(listing)["entries"][1]]}]
    assert bad_path.read_bytes() == b"9\t{\"id\": 7770, \n"
    assert forget_preview(open_store("memory:"), ADMIN, spool=spool_path).spooled_events == 0
    assert scrub(spool_path, ADMIN) == 0


def test_a_scrub_that_empties_the_spool_removes_it_and_one_that_finds_nobody_leaves_it_untouched(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([to_dict(MessageSeen(CHAT, DANA, T0))])
    before = spool.path.stat().st_ino
    assert scrub(spool.path, 12345) == 0
    assert spool.path.stat().st_ino == before  # not rewritten
    assert scrub(spool.path, ADMIN) == 1
    assert not spool.path.exists() and not spool.bad_path.exists()


# -- reading and writing: what the file holds, line by line ---------------------------------------
def test_a_first_start_with_no_spool_replays_nothing_and_keeps_nothing_aside(tmp_path):
    assert Spool(tmp_path / "never-written.jsonl").load(from_dict) == ([], 0)


def test_blank_lines_are_skipped_and_the_events_after_them_replayed(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.write_bytes(line(event(0)) + b"\n   \n" + line(event(1)))
    assert spool.load(from_dict)[1] == 0
    assert loaded(spool) == [100, 101]


def test_a_last_line_missing_only_its_newline_is_replayed(tmp_path):
    """An editor or a copy may drop the final newline: the event is whole, it is not a fragment."""
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.write_bytes(line(event(0)) + line(event(1))[:-1])
    assert loaded(spool) == [100, 101]
    assert not spool.bad_path.exists()


def test_damaged_lines_go_to_bad_exactly_each_with_its_line_number(tmp_path, monkeypatch):
    """A carriage return inside a damaged line is not a line break (numbers agree with `wc -l`),
    and a torn last line is kept with a newline of its own. Nothing else appears anywhere."""
    monkeypatch.chdir(tmp_path)
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.write_bytes(line(event(0)) + b'{"torn\r in the middle\n' + line(event(1)) + b'not json\n'
                           + line(event(2)) + b'{"cut short')
    assert spool.load(from_dict)[1] == 3
    assert spool.bad_path.read_bytes() == b'2\t{"torn\r in the middle\n4\tnot json\n6\t{"cut short\n'
    assert spool.path.read_bytes() == line(event(0)) + line(event(1)) + line(event(2))
    assert oct(spool.bad_path.stat().st_mode & 0o777) == "0o600"
    assert sorted(os.listdir(tmp_path)) == ["spool.jsonl", "spool.jsonl.bad", "spool.jsonl.lock"]


def test_the_first_bad_line_also_syncs_the_directory_that_now_names_bad(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.write_bytes(b"not json\n" + line(event(0)))
    disk = Durable(tmp_path)
    monkeypatch.setattr(os, "fsync", disk.fsync)
    spool.load(from_dict)
    spool.path.write_bytes(b"not json either\n" + line(event(0)))
    spool.load(from_dict)
    bad, tmp, directory = str(spool.bad_path), str(spool.path) + ".tmp", str(tmp_path)
    assert disk.synced_paths == [bad, directory, tmp, directory,  # .bad new: its name synced too
                                 bad, tmp, directory]


def test_an_append_holds_exactly_its_lines_owner_only_and_says_how_many(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spool = Spool(tmp_path / "private" / "spool.jsonl")
    assert spool.append([]) == 0 and not spool.exists()
    assert spool.append([to_dict(event(0)), to_dict(event(1))]) == 2
    spool.path.chmod(0o644)  # loosened by hand: the next append closes it again
    assert spool.append([to_dict(event(2))]) == 1
    assert spool.path.read_bytes() == line(event(0)) + line(event(1)) + line(event(2))
    assert oct(spool.path.stat().st_mode & 0o777) == "0o600"
    assert oct(spool.path.parent.stat().st_mode & 0o777) == "0o700"
    assert sorted(os.listdir(tmp_path)) == ["private"]
    spool.rewrite([to_dict(event(2))])
    assert sorted(os.listdir(tmp_path)) == ["private"]


def test_an_append_to_an_empty_spool_file_starts_at_its_first_line(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.touch()
    assert spool.append([to_dict(event(0))]) == 1
    assert spool.path.read_bytes() == line(event(0))


class FullDisk:
    """The spool's writes cut short half way by ENOSPC while `full`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import errno

        from tgsync_cli.runtime import spool as spool_module
        self.full = True
        real = spool_module._write_all

        def write_all(fd: int, data: bytes) -> None:
            if self.full:
                real(fd, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd, data)
        monkeypatch.setattr(spool_module, "_write_all", write_all)


def test_an_append_refused_by_a_full_disk_leaves_the_spool_as_it_was(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool.jsonl")
    disk = FullDisk(monkeypatch)
    with pytest.raises(OSError):
        spool.append([to_dict(event(0))])
    assert not spool.exists()  # a spool the failed append created is gone again
    disk.full = False
    spool.append([to_dict(event(1))])
    disk.full = True
    with pytest.raises(OSError):
        spool.append([to_dict(event(2))])
    assert spool.path.read_bytes() == line(event(1))  # no half line for the next append to follow
    disk.full = False
    spool.append([to_dict(event(3))])
    assert loaded(spool) == [101, 103] and not spool.bad_path.exists()


def test_a_rewrite_refused_by_a_full_disk_keeps_the_old_spool_whole_and_leaves_no_tmp(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([to_dict(event(0)), to_dict(event(1))])
    disk = FullDisk(monkeypatch)
    with pytest.raises(OSError):
        spool.rewrite([to_dict(event(1))])
    assert loaded(spool) == [100, 101]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spool.jsonl", "spool.jsonl.lock"]
    disk.full = False
    assert spool.rewrite_raw([line(event(1))[:-1], line(event(2))]) == 2  # each line ends in a newline
    assert spool.path.read_bytes() == line(event(1)) + line(event(2))
    assert oct(spool.path.stat().st_mode & 0o777) == "0o600"
    assert spool.rewrite([]) == 0 and not spool.exists()
    assert spool.rewrite([]) == 0


def test_a_full_disk_never_removes_a_spool_that_was_there_even_empty(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.touch()  # serve rewrote it empty a moment ago: it is not this append's to remove
    FullDisk(monkeypatch)
    with pytest.raises(OSError):
        spool.append([to_dict(event(0))])
    assert spool.exists() and spool.path.read_bytes() == b""


def test_a_full_disk_whose_cleanup_also_fails_still_reports_the_full_disk(tmp_path, monkeypatch):
    """Undoing the half write (truncate, remove the .tmp) can fail too; the error the caller
    sees is still the one that says what to do: free some space."""
    import errno

    spool = Spool(tmp_path / "spool.jsonl")
    spool.append([to_dict(event(0))])
    FullDisk(monkeypatch)

    def refuse(*_a: object) -> None:
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(os, "ftruncate", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(OSError) as append_error:
        spool.append([to_dict(event(1))])
    with pytest.raises(OSError) as rewrite_error:
        spool.rewrite([to_dict(event(2))])
    assert (append_error.value.errno, rewrite_error.value.errno) == (errno.ENOSPC, errno.ENOSPC)


def test_forget_scrubs_bad_without_a_spool_and_reads_past_blank_lines(tmp_path):
    """serve replayed its spool away but kept a damaged line in .bad; a blank line (an editor's)
    does not end the scrub: lines after it are kept or erased like the others."""
    spool = Spool(tmp_path / "spool.jsonl")
    spool.bad_path.write_bytes(b'4\t{"sender": {"id": 777\n')
    assert scrub(spool.path, ADMIN) == 1
    assert not spool.bad_path.exists()
    spool.path.write_bytes(line(event(0)) + b"\n" + line(MessageSeen(CHAT, DANA, T0)) + line(event(1)))
    assert scrub(spool.path, ADMIN) == 1
    assert spool.path.read_bytes() == line(event(0)) + line(event(1))


def test_a_torn_last_line_after_a_blank_line_is_still_kept_aside(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl")
    spool.path.write_bytes(line(event(0)) + b"\n" + b'{"cut short')
    assert spool.load(from_dict)[1] == 1
    assert spool.bad_path.read_bytes() == b'3\t{"cut short\n'
