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
