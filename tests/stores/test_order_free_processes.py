"""Two real processes replaying halves of one shuffled stream onto one SQLite file end member for
member where one process replaying the stream in time order does: status, role, source, joined_at,
status_at and last_seen. Each `tgsync replay` has its own member cache and seen-buffer (messages of
members it knows wait there until its flush), so this is the several-writers case as an operator
runs it: a serve and an admin's replay, or two replays at once."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.botapi_updates import CHAT, bot_added, message, user
from tgsync_cli.app.offline import replay
from tgsync_cli.stores import open_store

T0 = int(datetime(2025, 4, 1, tzinfo=timezone.utc).timestamp())
STATUSES = ["member", "administrator", "left", "kicked", "restricted"]
FIELDS = ("status", "role", "source", "joined_at", "status_at", "last_seen")


def member_update(date: int, uid: int, status: str, is_member: bool, update_id: int) -> Dict[str, Any]:
    """A chat_member update: uid's status becomes `status` (restricted: in the group or not)."""
    new: Dict[str, Any] = {"user": user(uid, f"u{uid}"), "status": status}
    if status == "restricted":
        new["is_member"] = is_member
    old = "member" if status in ("left", "kicked") else "left"
    return {"update_id": update_id, "chat_member": {
        "chat": CHAT, "from": user(uid, f"u{uid}"), "date": date,
        "old_chat_member": {"user": user(uid, f"u{uid}"), "status": old}, "new_chat_member": new}}


# one event a minute (equal times are "the later delivered wins", order-dependent by design)
stream = st.lists(st.tuples(st.sampled_from(STATUSES + ["message"] * 3), st.integers(2, 5), st.booleans()),
                  min_size=2, max_size=16).map(lambda xs: [
                      message(T0 + 60 * (i + 1), uid, update_id=100 + i) if kind == "message"
                      else member_update(T0 + 60 * (i + 1), uid, kind, b, 100 + i)
                      for i, (kind, uid, b) in enumerate(xs)])


def write(path: Path, updates: List[Dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(u) + "\n" for u in updates))
    return path


def members(uri: str) -> Dict[int, Tuple[Any, ...]]:
    with open_store(uri, create=False) as store:
        club = store.club_by_group(CHAT["id"])
        return {m["telegram_id"]: tuple(m[k] for k in FIELDS) for m in club["members"]}


def with_club(uri: str, folder: Path) -> None:
    """The group the bot was added to, in the store before any writer starts."""
    with open_store(uri) as store:
        replay(write(folder / "club.jsonl", [bot_added(T0, uid=1)]), store)


def in_time_order(updates: List[Dict[str, Any]], folder: Path) -> Dict[int, Tuple[Any, ...]]:
    """One process, the stream sorted by Telegram time."""
    alone = f"file:{folder}/alone"
    with_club(alone, folder)
    with open_store(alone) as store:
        replay(write(folder / "sorted.jsonl", sorted(updates, key=date)), store)
    return members(alone)


def date(update: Dict[str, Any]) -> int:
    return (update.get("message") or update.get("chat_member"))["date"]


def tgsync_replay(files: List[Path], uri: str, folder: Path) -> List[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-m", "tgsync_cli", "replay", str(f), "--store", uri],
                             cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for f in files]


def finished(procs: List[subprocess.Popen]) -> None:
    codes = [p.wait(120) for p in procs]
    assert codes == [0] * len(procs), [p.stderr.read() for p in procs if p.stderr]


@settings(max_examples=4, deadline=None)
@given(updates=stream, data=st.data())
def test_two_replay_processes_on_one_store_end_as_one_in_time_order(updates, data):
    shuffled = data.draw(st.permutations(updates))
    cut = data.draw(st.integers(0, len(updates)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shared = f"file:{folder}/shared"
        with_club(shared, folder)
        finished(tgsync_replay([write(folder / "first.jsonl", shuffled[:cut]),
                                write(folder / "second.jsonl", shuffled[cut:])], shared, folder))
        assert members(shared) == in_time_order(updates, folder)


def test_a_leave_between_messages_another_replay_wrote_dates_the_return_by_the_first_after_it(tmp_path):
    """Given one replay that saw runner 7 leave at minute 100 and write at 500, when a second
    replay (its own process, its cache warm with runner 7 active) brings their messages at 150 and
    300 and a leave at 200, runner 7 is active since 300, last seen at 500: as in time order."""
    first = [member_update(T0 + 60 * 100, 7, "left", False, 1), message(T0 + 60 * 500, 7, update_id=2)]
    second = [message(T0 + 60 * 150, 7, update_id=3), member_update(T0 + 60 * 200, 7, "left", False, 4),
              message(T0 + 60 * 300, 7, update_id=5)]
    shared = f"file:{tmp_path}/shared"
    with_club(shared, tmp_path)
    for i, part in enumerate((first, second)):  # one after the other: the second starts warm
        finished(tgsync_replay([write(tmp_path / f"part{i}.jsonl", part)], shared, tmp_path))
    got = members(shared)
    assert got == in_time_order(first + second, tmp_path)
    minute = {k: int((v - datetime(2025, 4, 1)).total_seconds() // 60) for k, v in zip(FIELDS, got[7])
              if isinstance(v, datetime)}
    assert (got[7][0], minute["status_at"], minute["last_seen"]) == ("active", 300, 500)
