"""The work queue's order and timers: the spool from the last shutdown goes before anything new,
and buffered last_seen reaches the store on the flush timer and when asked, not only at stop."""

import time
from datetime import timedelta

from tests.runtime.test_pipeline import CHAT, T0, engine_on
from tgsync_cli.core.events import MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

DANA = Person(5, first_name="Dana")


def member(store, person=DANA):
    doc = store.club_by_group(CHAT.id)
    return next((m for m in doc["members"] if m["telegram_id"] == person.id), None)


def eventually(check, seconds=10.0):
    """Poll until `check()` holds; the bound only keeps a broken build from hanging."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def test_the_spool_is_replayed_before_updates_that_arrived_after_the_restart(tmp_path):
    """Dana was promoted and, in the same second, demoted again. The promotion was pending at
    shutdown (spooled); the demotion arrives after the restart. Equal times: the later delivered
    wins, so the roster ends with her a member only if the spool goes first."""
    store, spool = open_store("memory:"), tmp_path / "spool.jsonl"
    engine = engine_on(store)
    engine.handle(MemberStatusChanged(CHAT, DANA, MemberState("member"), T0))
    same_second = T0 + timedelta(minutes=1)

    before = Pipeline(engine, spool_path=str(spool))
    before.submit(MemberStatusChanged(CHAT, DANA, MemberState("administrator"), same_second))
    assert before.stop(timeout=1) == 1  # never got to it: spooled

    after = Pipeline(engine_on(store), spool_path=str(spool))
    after.submit(MemberStatusChanged(CHAT, DANA, MemberState("member"), same_second))  # queued at once
    assert after.start() == 1
    assert after.stop(timeout=10) == 0
    assert (member(store)["role"], member(store)["status"]) == ("member", "active")


def test_the_flush_timer_writes_last_seen_while_the_bot_keeps_running(tmp_path):
    store = open_store("memory:")
    engine = engine_on(store)
    engine.handle(MemberStatusChanged(CHAT, DANA, MemberState("member"), T0))
    pipe = Pipeline(engine, flush_seconds=0.05)
    pipe.start()
    try:
        pipe.submit(MessageSeen(CHAT, DANA, T0 + timedelta(hours=1)))  # hot path: buffered
        assert eventually(lambda: member(store)["last_seen"] == T0 + timedelta(hours=1))
    finally:
        pipe.stop(timeout=5)


def test_flush_soon_writes_last_seen_without_waiting_for_the_timer(tmp_path):
    store = open_store("memory:")
    engine = engine_on(store)
    engine.handle(MemberStatusChanged(CHAT, DANA, MemberState("member"), T0))
    pipe = Pipeline(engine, flush_seconds=3600)
    pipe.start()
    try:
        pipe.submit(MessageSeen(CHAT, DANA, T0 + timedelta(hours=1)))
        assert eventually(lambda: pipe.backlog() == 0 and pipe.applied == 1)
        assert member(store)["last_seen"] is None  # buffered: an hour until the timer
        pipe.flush_soon()  # what SIGHUP asks for
        assert eventually(lambda: member(store)["last_seen"] == T0 + timedelta(hours=1))
    finally:
        pipe.stop(timeout=5)
