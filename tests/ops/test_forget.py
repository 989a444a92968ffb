"""`forget`: a data-protection request leaves no trace of the person anywhere in the store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tgsync_cli import ops
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.cli import app
from tgsync_cli.stores import open_store
from tests.worlds import CHAT, Story


def traces(store, needles):
    """Every document, in every collection, that mentions one of `needles` in any field."""
    def mentions(v):
        if isinstance(v, dict):
            return any(mentions(x) for x in v.values())
        if isinstance(v, list):
            return any(mentions(x) for x in v)
        return not isinstance(v, bool) and v in needles
    return [(name, d.get("_id") or repr(d)) for name, docs in store.export().items()
            for d in docs if mentions(d)]


def busy_story() -> Story:
    """Asel (1) created the club by adding the bot; 2 writes; 5 leaves a second club unseen."""
    story = Story({1: "creator", 2: "member", 5: "member"})
    story.scenario["chats"].append({"id": -1002, "type": "supergroup", "title": "Trail Crew",
                                    "members": [{"user": 1, "status": "creator"},
                                                {"user": 5, "status": "member"}]})
    return (story.bot_added(by=1).then("message", user=2)
            .then("add_bot", chat=-1002, by=1, as_="administrator")
            .then("leave", chat=-1002, user=5))


def test_forget_removes_account_memberships_departures_and_creator_links(tmp_path):
    out = busy_story().run(tmp_path)
    store = out.store
    user_id = out.account(1)["_id"]
    assert traces(store, {1, user_id})  # given: Asel is all over the store
    cache = MemoryMemberCache()
    clubs = {d["telegram_group_id"]: d["_id"] for d in store.all_clubs()}
    for cid in clubs.values():
        cache.add(cid, 1)

    rep = ops.forget(store, cache, 1)

    assert traces(store, {1, user_id}) == []
    assert sorted(c["telegram_group_id"] for c in rep.clubs) == sorted([CHAT, -1002])
    assert rep.accounts == 1 and rep.created_by_cleared == 2 and rep.cache_entries == 2
    assert not any(cache.is_active(cid, 1) for cid in clubs.values())
    assert {m["telegram_id"] for m in store.club_by_group(CHAT)["members"]} == {2}


def test_forget_erases_the_departure_record_of_someone_never_a_member(tmp_path):
    out = busy_story().run(tmp_path)
    assert traces(out.store, {5})  # the unseen leave left a departure record, nothing else

    rep = ops.forget(out.store, None, 5)

    assert rep.departures == 1 and rep.accounts == 0 and rep.clubs == []
    assert traces(out.store, {5}) == []


def test_forget_leaves_everyone_else_alone(tmp_path):
    out = busy_story().run(tmp_path)
    before = traces(out.store, {2})
    ops.forget(out.store, None, 1)
    assert traces(out.store, {2}) == before
    assert out.member(2) == ("member", "active", "message_activity")


def _file_store(tmp_path):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    Story({1: "creator", 2: "member"}).bot_added().then("message", user=2).run(tmp_path, store)
    store.close()
    return uri


def test_cli_forget_with_yes_prints_what_it_removed(tmp_path):
    uri = _file_store(tmp_path)
    res = CliRunner().invoke(app, ["forget", "2", "--yes", "--json", "--store", uri])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["accounts"] == 1 and [c["telegram_group_id"] for c in doc["clubs"]] == [CHAT]
    store = open_store(uri)
    assert traces(store, {2}) == []
    store.close()


def test_cli_forget_without_yes_and_without_input_refuses_in_one_line(tmp_path):
    uri = _file_store(tmp_path)
    res = CliRunner().invoke(app, ["forget", "2", "--store", uri])
    assert res.exit_code == 1
    assert res.stderr.strip() == "error: forget needs confirmation: pass --yes (no input to ask on)"
    store = open_store(uri)
    assert store.user_by_telegram_id(2) is not None
    store.close()


def test_cli_forget_asks_and_obeys_the_answer(tmp_path):
    uri = _file_store(tmp_path)
    no = CliRunner().invoke(app, ["forget", "2", "--store", uri], input="n\n")
    assert no.exit_code == 1 and "nothing removed" in no.stderr
    yes = CliRunner().invoke(app, ["forget", "2", "--store", uri], input="y\n")
    assert yes.exit_code == 0, yes.output
    assert "removed for telegram id 2" in yes.stdout
    assert "Sunday Long Run" in yes.stderr  # the preview named the club before asking


def test_cli_forget_of_a_stranger_says_nothing_is_stored(tmp_path):
    uri = _file_store(tmp_path)
    res = CliRunner().invoke(app, ["forget", "424242", "--store", uri])
    assert res.exit_code == 0
    assert "nothing stored about telegram id 424242" in res.stdout


def test_cli_forget_also_drops_their_events_waiting_in_the_serve_spool(tmp_path, monkeypatch):
    """Events spooled while the store was down would bring the person back at the next start."""
    from datetime import datetime

    from tgsync_cli.core.codec import to_dict
    from tgsync_cli.core.events import ChatRef, MessageSeen, Person

    uri = _file_store(tmp_path)
    session = tmp_path / "session"
    session.mkdir()
    spool = session / "pending-events.jsonl"
    chat = ChatRef(CHAT, "supergroup", "Sunday Long Run")
    lines = [to_dict(MessageSeen(chat, Person(uid, first_name="x"), datetime(2025, 5, 1))) for uid in (2, 3, 2)]
    spool.write_text("".join(json.dumps(d) + "\n" for d in lines))
    monkeypatch.setenv("TGSYNC_TELEGRAM_SESSION_DIR", str(session))

    res = CliRunner().invoke(app, ["forget", "2", "--yes", "--json", "--store", uri])

    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["spooled_events"] == 2
    left = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [d["sender"]["id"] for d in left] == [3]


def _spool_line(uid, minute=0):
    from datetime import datetime, timedelta

    from tgsync_cli.core.codec import to_dict
    from tgsync_cli.core.events import ChatRef, MessageSeen, Person

    ev = MessageSeen(ChatRef(CHAT, "supergroup", "Sunday Long Run"), Person(uid, first_name="x"),
                     datetime(2025, 5, 1) + timedelta(minutes=minute))
    return (json.dumps(to_dict(ev)) + "\n").encode()


def _pyrogram_session(path, peers):
    import sqlite3

    from pyrogram.storage.sqlite_storage import SCHEMA

    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    for uid, username in peers:
        db.execute("INSERT INTO peers (id, access_hash, type, phone_number) VALUES (?, ?, 'user', NULL)",
                   (uid, 987654321987 + uid))
        db.execute("INSERT INTO usernames (id, username) VALUES (?, ?)", (uid, username))
    db.commit()
    db.close()


def test_forget_reaches_a_person_only_in_the_spool_its_bad_lines_and_the_telegram_session(tmp_path, monkeypatch):
    """Never stored (the store was down), but in the spool, in a damaged spool line, in `.bad`,
    and in pyrogram's peer cache: all of it goes, nothing of anyone else does."""
    import sqlite3

    uri = _file_store(tmp_path)
    session = tmp_path / "session"
    session.mkdir()
    spool = session / "pending-events.jsonl"
    truncated = _spool_line(777, 1)[:-30] + b"\n"
    spool.write_bytes(_spool_line(777) + _spool_line(2, 2) + truncated + _spool_line(3, 3))
    (session / "pending-events.jsonl.bad").write_bytes(b"7\t" + _spool_line(777, 4)[:-20] + b"\n"
                                                       + b"9\t\xff 12777 not them\n")
    _pyrogram_session(session / "tgsync.session", [(777, "mira"), (3, "ivan")])
    monkeypatch.setenv("TGSYNC_TELEGRAM_SESSION_DIR", str(session))

    res = CliRunner().invoke(app, ["forget", "777", "--yes", "--json", "--store", uri])

    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["found"] and rep["spooled_events"] == 3 and rep["session_entries"] == 2
    assert b"777" not in spool.read_bytes().replace(b"12777", b"")
    assert len(spool.read_bytes().splitlines()) == 2
    assert (session / "pending-events.jsonl.bad").read_bytes() == b"9\t\xff 12777 not them\n"
    db = sqlite3.connect(session / "tgsync.session")
    assert db.execute("SELECT id FROM peers").fetchall() == [(3,)]
    assert db.execute("SELECT id, username FROM usernames").fetchall() == [(3, "ivan")]
    assert b"mira" not in (session / "tgsync.session").read_bytes()  # secure_delete: no leftovers


SERVE_HOLDING = r"""
import sys
from datetime import datetime
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import ChatRef, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.sim.faults import FaultyStore
from tgsync_cli.stores import open_store

store = open_store(sys.argv[1])
faults = FaultyStore(store)
engine = Engine(faults, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
engine.start()
pipe = Pipeline(engine, spool_path=sys.argv[2], backoff=(0.05, 0.05), forget_poll_seconds=0.05)
import threading
polled, real_poll = threading.Condition(), pipe.forget.poll
polls = [0]
def poll():  # counted, so the end below waits for polls, not for a fixed time
    real_poll()
    with polled:
        polls[0] += 1
        polled.notify_all()
pipe.forget.poll = poll
pipe.start()
faults.fail_for(3600)  # the store is unreachable from this serve: its events wait in memory
chat = ChatRef(int(sys.argv[3]), "supergroup", "Sunday Long Run")
for uid, minute in ((2, 10), (3, 11), (2, 12), (808, 13)):
    pipe.submit(MessageSeen(chat, Person(uid, first_name="x"), datetime(2025, 6, 1, 8, minute)))
print("holding", flush=True)
sys.stdin.readline()
faults.heal()
while pipe.backlog():
    pass
with polled:  # two forget polls after the store came back: the note is seen, the rest erased
    target = polls[0] + 2
    if not polled.wait_for(lambda: polls[0] >= target, timeout=30):
        sys.exit("no forget poll")
print(pipe.stop(timeout=10), flush=True)
"""


def test_a_running_serve_drops_what_it_holds_for_a_forgotten_person(tmp_path):
    """The serve (a real process) holds Dana's (2) messages while its store connection is down;
    `forget 2` runs in another real process; when the serve's store is back, it neither applies
    them for good nor spools them: nothing brings Dana back."""
    import subprocess
    import sys

    uri = _file_store(tmp_path)
    spool = tmp_path / "spool.jsonl"
    serve = subprocess.Popen([sys.executable, "-c", SERVE_HOLDING, uri, str(spool), str(CHAT)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout.readline().strip() == "holding"
        forget = subprocess.run([sys.executable, "-m", "tgsync_cli", "forget", "2", "--yes", "--store", uri],
                                capture_output=True, text=True, timeout=120)
        assert forget.returncode == 0, forget.stderr
        stranger = subprocess.run([sys.executable, "-m", "tgsync_cli", "forget", "808", "--yes", "--store", uri],
                                  capture_output=True, text=True, timeout=120)
        assert "nothing stored about telegram id 808" in stranger.stdout  # only in the serve's memory
        serve.stdin.write("go\n")
        serve.stdin.flush()
        assert serve.stdout.readline().strip() == "0"  # nothing spooled
        assert serve.wait(30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
    store = open_store(uri)
    assert traces(store, {2}) == [] and traces(store, {808}) == []
    assert {m["telegram_id"] for m in store.club_by_group(CHAT)["members"]} == {1, 3}


APPENDER = r"""
import sys
from tgsync_cli.runtime.spool import Spool
sp = Spool(sys.argv[1])
print("go", flush=True)
for i in range(int(sys.argv[2])):
    sp.append([{"type": "LastSeen", "club_id": "club_x", "telegram_id": 3, "at": "2025-05-01T06:00:00"}])
"""


def test_forget_scrubbing_the_spool_of_a_running_serve_loses_none_of_its_appends(tmp_path):
    """A serve process appends (last_seen checkpoints) while forget rewrites the same spool."""
    import subprocess
    import sys

    from tgsync_cli.runtime.spool import Spool, scrub

    spool = tmp_path / "pending-events.jsonl"
    Spool(spool).append([{"type": "LastSeen", "club_id": "club_x", "telegram_id": 2,
                          "at": "2025-05-01T06:00:00"}])
    serve = subprocess.Popen([sys.executable, "-c", APPENDER, str(spool), "1500"], stdout=subprocess.PIPE,
                             text=True)
    assert serve.stdout.readline().strip() == "go"
    while serve.poll() is None:
        Spool(spool).append([{"type": "LastSeen", "club_id": "club_x", "telegram_id": 2,
                              "at": "2025-05-01T06:00:00"}])
        scrub(spool, 2)
    assert serve.wait() == 0
    scrub(spool, 2)
    assert spool.read_bytes().count(b"\n") == 1500


def test_the_preview_counts_what_forget_would_take_from_the_spool_bad_lines_and_session_and_takes_nothing(tmp_path):
    """Before the confirmation: Mira (777) is in two spool lines (one damaged), one `.bad` line,
    and pyrogram's peers and usernames. The preview says 3 and 2 and leaves every file as it was;
    with the spool gone, her `.bad` line is still counted."""
    from tgsync_cli.ops.forget import forget_preview

    session = tmp_path / "session"
    session.mkdir()
    spool = session / "pending-events.jsonl"
    spool.write_bytes(_spool_line(777) + _spool_line(2, 2) + _spool_line(777, 1)[:-30] + b"\n")
    bad = session / "pending-events.jsonl.bad"
    bad.write_bytes(b"7\t" + _spool_line(777, 4)[:-20] + b"\n" + b"9\t\xff 12777 not them\n")
    _pyrogram_session(session / "tgsync.session", [(777, "mira"), (3, "ivan")])
    before = {p.name: p.read_bytes() for p in session.iterdir()}
    store = open_store(_file_store(tmp_path))

    rep = forget_preview(store, 777, spool=spool)

    assert (rep.spooled_events, rep.session_entries) == (3, 2)
    assert {p.name: p.read_bytes() for p in session.iterdir()} == before
    spool.unlink()
    assert forget_preview(store, 777, spool=spool).spooled_events == 1


def test_forget_refuses_an_id_that_is_no_user_before_touching_anything(tmp_path):
    import pytest

    from tgsync_cli.core.errors import InputError
    from tgsync_cli.ops.forget import forget

    store = open_store(_file_store(tmp_path))
    before = store.export()
    for bad_id in (0, -1001500):
        with pytest.raises(InputError) as exc:
            forget(store, None, bad_id)
        assert str(exc.value) == f"TELEGRAM_ID must be a positive user id (got {bad_id})"
    assert store.export() == before
