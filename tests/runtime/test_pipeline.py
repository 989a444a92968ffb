"""The work queue: the update loop hands events over; the store being down loses nothing."""

import json
import threading
import time
from datetime import datetime, timedelta

from tests.worlds import engine_with_club
from tgsync_cli.core.errors import StoreConflict, StoreUnavailable
from tgsync_cli.core.events import (
    ChatRef,
    MemberState,
    MemberStatusChanged,
    MessageSeen,
    Person,
)
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

CHAT = ChatRef(-100555, "supergroup", "Hill Repeats")
T0 = datetime(2025, 5, 1, 6, 0)


class FlakyStore:
    """A store that fails its next `fail_next` calls, as a MongoDB outage would."""

    def __init__(self, store):
        self.store, self.fail_next = store, 0

    def __getattr__(self, name):
        value = getattr(self.store, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            if self.fail_next > 0:
                self.fail_next -= 1
                raise StoreUnavailable(f"injected failure in {name}")
            return value(*args, **kwargs)
        return call


def engine_on(store):
    return engine_with_club(store, CHAT, T0)


def handled_then(handle, events):
    """The engine's handle, setting `events[id(event)]` once that event is applied: a barrier a
    test waits on instead of sleeping until the worker got there."""
    def wrapped(event):
        handle(event)
        done = events.get(id(event))
        if done is not None:
            done.set()
    return wrapped


def writers(n):
    return [MessageSeen(CHAT, Person(100 + i, first_name=f"r{i}"), T0 + timedelta(minutes=i)) for i in range(n)]


def spooled_writers(spool):
    """The writers in the spool file, in its order."""
    return [json.loads(line)["sender"]["id"] for line in spool.read_text().splitlines()]


def test_events_wait_out_a_store_outage_and_all_arrive(tmp_path):
    store = open_store("memory:")
    flaky = FlakyStore(store)
    pipe = Pipeline(engine_on(flaky), spool_path=str(tmp_path / "spool.jsonl"), backoff=(0.001, 0.01))
    pipe.start()
    flaky.fail_next = 7
    for e in writers(20):
        pipe.submit(e)
    assert pipe.stop(timeout=10) == 0
    members = store.club_by_group(CHAT.id)["members"]
    assert sorted(m["telegram_id"] for m in members) == list(range(100, 120))
    assert pipe.retries >= 1


def test_pending_events_are_spooled_at_shutdown_and_replayed_first_on_start(tmp_path):
    store = open_store("memory:")
    flaky = FlakyStore(store)
    spool = tmp_path / "spool.jsonl"
    engine = engine_on(flaky)
    pipe = Pipeline(engine, spool_path=str(spool), backoff=(0.01, 0.01))
    flaky.fail_next = 10**9  # the store stays down through shutdown
    pipe.start()
    for e in writers(5):
        pipe.submit(e)
    left = pipe.stop(timeout=0.3)
    assert left == 5 and spooled_writers(spool) == [100, 101, 102, 103, 104]  # in arrival order
    flaky.fail_next = 0  # the store is back; a new process starts
    pipe2 = Pipeline(engine_on(store), spool_path=str(spool))
    assert pipe2.start() == 5
    pipe2.stop(timeout=10)
    assert not spool.exists()
    assert len(store.club_by_group(CHAT.id)["members"]) == 5


def test_stop_does_not_hang_when_the_store_is_down_and_the_queue_is_full(tmp_path):
    store = open_store("memory:")
    flaky = FlakyStore(store)
    spool = tmp_path / "spool.jsonl"
    pipe = Pipeline(engine_on(flaky), max_pending=3, spool_path=str(spool), backoff=(30.0, 30.0))
    flaky.fail_next = 10**9
    pipe.start()
    for e in writers(4):  # one in flight (waiting out a 30 s backoff) and a full queue
        pipe.submit(e, timeout=5)
    assert pipe.stats()["store_down"] or pipe.backlog() == 4
    assert pipe.stop(timeout=0.2) == 4
    assert spooled_writers(spool) == [100, 101, 102, 103]  # the one in flight first, then the queue
    assert oct(spool.stat().st_mode & 0o777) == "0o600"  # it holds people's names


def test_an_event_arriving_after_shutdown_goes_to_the_spool_not_nowhere(tmp_path):
    store = open_store("memory:")
    spool = tmp_path / "spool.jsonl"
    pipe = Pipeline(engine_on(store), spool_path=str(spool))
    pipe.start()
    assert pipe.stop(timeout=5) == 0
    pipe.submit(writers(1)[0])
    assert pipe.stats()["accepted"] == 1 and pipe.spooled == 1
    pipe2 = Pipeline(engine_on(store), spool_path=str(spool))
    assert pipe2.start() == 1
    pipe2.stop(timeout=5)
    assert [m["telegram_id"] for m in store.club_by_group(CHAT.id)["members"]] == [100]


def test_a_crash_during_replay_leaves_the_spool_to_replay_again(tmp_path):
    store = open_store("memory:")
    spool = tmp_path / "spool.jsonl"
    pipe = Pipeline(engine_on(store), spool_path=str(spool))
    for e in writers(3):
        pipe.submit(e)
    assert pipe.stop(timeout=1) == 3  # never started: all three spooled
    crashed = Pipeline(engine_on(store), spool_path=str(spool))
    assert crashed.start() == 3
    for _ in range(500):  # it replays... and the process dies before stop()
        if crashed.backlog() == 0:
            break
        time.sleep(0.01)
    assert spool.exists()
    assert spooled_writers(spool) == [100, 101, 102]
    again = Pipeline(engine_on(store), spool_path=str(spool))
    assert again.start() == 3  # replayed a second time: harmless
    again.stop(timeout=5)
    assert not spool.exists()
    assert sorted(m["telegram_id"] for m in store.club_by_group(CHAT.id)["members"]) == [100, 101, 102]
    crashed.stop(timeout=5)  # the "dead" process's worker must not outlive the test


def test_a_poisonous_event_is_reported_and_the_queue_moves_on(tmp_path):
    store = open_store("memory:")
    pipe = Pipeline(engine_on(store), spool_path=str(tmp_path / "spool.jsonl"))
    pipe.start()
    pipe.submit("not an event")
    for e in writers(2):
        pipe.submit(e)
    pipe.stop(timeout=5)
    assert len(pipe.failed) == 1 and "not an event" in pipe.failed[0]
    assert pipe.stats() == {"accepted": 3, "applied": 2, "failed": 1, "retries": 0, "replayed": 0,
                            "spooled": 0, "backlog": 0, "store_down": False, "parked": 0,
                            "waiting_for_club": 0, "gave_up": 0}
    assert len(store.club_by_group(CHAT.id)["members"]) == 2


def test_a_damaged_spool_line_is_kept_aside_with_its_line_number_and_the_rest_replays(tmp_path, caplog):
    store = open_store("memory:")
    spool = tmp_path / "spool.jsonl"
    pipe = Pipeline(engine_on(store), spool_path=str(spool))
    for e in writers(2):
        pipe.submit(e)
    pipe.stop(timeout=1)
    lines = spool.read_text().splitlines()
    spool.write_text(lines[0] + "\n{\"type\": \"Nonsense\"}\n" + lines[1][:20] + "\n")
    pipe2 = Pipeline(engine_on(store), spool_path=str(spool))
    assert pipe2.start() == 1
    pipe2.stop(timeout=5)
    assert "spool.jsonl:2:" in caplog.text and "spool.jsonl:3:" in caplog.text
    assert len((tmp_path / "spool.jsonl.bad").read_text().splitlines()) == 2
    assert [m["telegram_id"] for m in store.club_by_group(CHAT.id)["members"]] == [100]


def test_the_member_cache_is_rewarmed_from_the_store_every_half_ttl():
    """A member another process added becomes a hot-path member without writing first."""
    import time as _time

    store = open_store("memory:")
    engine = engine_on(store)
    other = engine_on(store)  # another process
    other.handle(writers(1)[0])
    club_id = engine.club(CHAT.id).club_id
    assert not engine.cache.is_active(club_id, 100)
    pipe = Pipeline(engine, rewarm_seconds=0.05)
    pipe.start()
    deadline = _time.monotonic() + 10
    while not engine.cache.is_active(club_id, 100) and _time.monotonic() < deadline:
        _time.sleep(0.02)
    pipe.stop(timeout=5)
    assert engine.cache.is_active(club_id, 100)


class RacingStore:
    """Another process creates the same account a moment before us, once: the store's insert
    answers with a unique-key error, as MongoDB and SQLite do."""

    def __init__(self, store):
        self._store, self.raced = store, 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def observe(self, club_id, obs):
        if not self.raced:
            self.raced += 1
            self._store.observe(club_id, obs)  # the other process's write
            raise StoreConflict("E11000 duplicate key error collection: users")
        return self._store.observe(club_id, obs)


def test_two_processes_meeting_the_same_new_member_is_a_retry_not_a_failure(tmp_path):
    store = open_store("memory:")
    racing = RacingStore(store)
    engine = engine_on(racing)
    pipe = Pipeline(engine, spool_path=str(tmp_path / "spool.jsonl"))
    pipe.start()
    join = MemberStatusChanged(CHAT, Person(321, first_name="Dana"), MemberState("member"), T0)
    pipe.submit(join)
    pipe.stop(timeout=5)
    assert racing.raced == 1
    assert pipe.failed == [] and pipe.applied == 1 and pipe.stats()["retries"] == 1
    assert [(m["telegram_id"], m["status"]) for m in store.club_by_group(CHAT.id)["members"]] == [(321, "active")]
    assert store.counts()["users"] == 1 and store.user_by_telegram_id(321) is not None


class BrokenUntilFixed:
    """An engine bug that refuses one kind of event (not a store outage)."""

    def __init__(self, engine):
        self.engine = engine
        self.__dict__.update({k: getattr(engine, k) for k in ("store", "cache", "seen")})

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def handle(self, event):
        if isinstance(event, MemberStatusChanged):
            raise KeyError("status_at")
        self.engine.handle(event)


def test_an_event_that_keeps_failing_is_not_counted_as_applied_and_is_retried_at_the_next_start(tmp_path):
    store = open_store("memory:")
    spool = tmp_path / "spool.jsonl"
    pipe = Pipeline(BrokenUntilFixed(engine_on(store)), spool_path=str(spool))
    pipe.start()
    pipe.submit(MemberStatusChanged(CHAT, Person(321, first_name="Dana"), MemberState("member"), T0))
    for e in writers(1):
        pipe.submit(e)
    pipe.stop(timeout=5)
    assert pipe.applied == 1 and pipe.stats()["parked"] == 1 and "KeyError" in pipe.failed[0]
    fixed = Pipeline(engine_on(store), spool_path=str(spool))
    assert fixed.start() == 1
    fixed.stop(timeout=5)
    assert sorted(m["telegram_id"] for m in store.club_by_group(CHAT.id)["members"]) == [100, 321]
    assert not spool.exists()


def test_a_spool_with_hostile_lines_replays_every_good_line_and_keeps_the_bad_ones(tmp_path):
    """3,000 spooled events, four unreadable lines among them: all 3,000 come back, and a store
    outage at that start re-spools all of them (never only what was read before the bad line)."""
    store = open_store("memory:")
    spool = tmp_path / "spool.jsonl"
    first = Pipeline(engine_on(store), spool_path=str(spool))
    for i in range(3000):  # 30 runners writing 100 messages each
        first.submit(MessageSeen(CHAT, Person(100 + i % 30, first_name="r"), T0 + timedelta(minutes=i)))
    assert first.stop(timeout=1) == 3000
    good = spool.read_bytes().splitlines(keepends=True)
    hostile = [b"\xff\xfe not utf-8\n", b"[" * 100_000 + b"]" * 100_000 + b"\n", b"{not json\n",
               b'{"type": "Nonsense", "at": "2025-05-01T06:00:00"}\n']
    spool.write_bytes(b"".join([hostile[0], *good[:95], hostile[1], *good[95:1500], hostile[2],
                                *good[1500:], hostile[3]]))
    flaky = FlakyStore(store)
    flaky.fail_next = 10 ** 9  # the store is down for this whole run
    engine = Engine(flaky, OfflineGateway(), MemoryMemberCache(), bot_id=9000)
    second = Pipeline(engine, spool_path=str(spool), backoff=(0.01, 0.01))
    assert second.start() == 3000
    assert second.stop(timeout=0.2) == 3000
    assert len(spool.read_bytes().splitlines()) == 3000
    bad = (tmp_path / "spool.jsonl.bad").read_bytes().splitlines()
    assert [b.split(b"\t", 1)[0] for b in bad] == [b"1", b"97", b"1503", b"3004"]
    assert oct(spool.stat().st_mode & 0o777) == oct((tmp_path / "spool.jsonl.bad").stat().st_mode & 0o777) == "0o600"
    flaky.fail_next = 0
    third = Pipeline(engine_on(store), spool_path=str(spool))
    assert third.start() == 3000
    third.stop(timeout=30)
    members = store.club_by_group(CHAT.id)["members"]
    assert len(members) == 30 and max(m["last_seen"] for m in members) == T0 + timedelta(minutes=2999)
    assert not spool.exists() and len((tmp_path / "spool.jsonl.bad").read_bytes().splitlines()) == 4


def test_last_seen_survives_a_store_outage_at_shutdown_through_the_spool(tmp_path):
    store = open_store("memory:")
    flaky = FlakyStore(store)
    spool = tmp_path / "spool.jsonl"
    engine = engine_on(flaky)
    pipe = Pipeline(engine, spool_path=str(spool))
    later = MessageSeen(CHAT, Person(100, first_name="r0"), T0 + timedelta(hours=5))
    first, second = writers(2)
    applied = {id(e): threading.Event() for e in (second, later)}
    engine.handle = handled_then(engine.handle, applied)
    pipe.start()
    pipe.submit(first)
    pipe.submit(second)
    assert applied[id(second)].wait(10)  # the writers are members (slow path) before the message
    pipe.submit(later)
    assert applied[id(later)].wait(10)  # on the hot path: only the flush will write it
    flaky.fail_next = 10 ** 9
    pipe.stop(timeout=0.5)
    assert "LastSeen" in spool.read_text()
    flaky.fail_next = 0
    again = Pipeline(engine_on(store), spool_path=str(spool))
    again.start()
    again.stop(timeout=5)
    seen = {m["telegram_id"]: m.get("last_seen") for m in store.club_by_group(CHAT.id)["members"]}
    assert seen == {100: T0 + timedelta(hours=5), 101: T0 + timedelta(minutes=1)}
    assert not spool.exists()


CHILD = r"""
import sys, time
from datetime import datetime, timedelta
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState, MessageSeen, Person
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

store_uri, spool = sys.argv[1], sys.argv[2]
chat, t0 = ChatRef(-100555, "supergroup", "Hill Repeats"), datetime(2025, 5, 1, 6, 0)
engine = Engine(open_store(store_uri), OfflineGateway(), MemoryMemberCache(), bot_id=9000)
engine.start()
pipe = Pipeline(engine, spool_path=spool, flush_seconds=3600, checkpoint_seconds=0.05)
pipe.start()
pipe.submit(BotStatusChanged(chat, None, MemberState("left"), MemberState("member"), t0))
for i in range(40):  # 4 runners, 10 messages each: 4 new members, then the hot path
    pipe.submit(MessageSeen(chat, Person(100 + i % 4, first_name="r"), t0 + timedelta(minutes=i)))
import os
while pipe.backlog() or not os.path.exists(spool) or "2025-05-01T06:39:00" not in open(spool).read():
    time.sleep(0.02)
print("checkpointed", flush=True)
time.sleep(600)
"""


def test_kill_9_of_a_serving_process_keeps_last_seen_up_to_the_last_checkpoint(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    store_uri, spool = f"file:{tmp_path / 'data'}", tmp_path / "spool.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, store_uri, str(spool)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "checkpointed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    store = open_store(store_uri)
    # the store has each runner's first message (it created them), never the newer ones: those
    # were buffered on the hot path and never flushed
    assert {m.get("last_seen") for m in store.club_by_group(CHAT.id)["members"]} == {
        T0 + timedelta(minutes=k) for k in range(4)}
    restarted = Pipeline(engine_on(store), spool_path=str(spool))
    restarted.start()
    restarted.stop(timeout=10)
    seen = {m["telegram_id"]: m["last_seen"] for m in store.club_by_group(CHAT.id)["members"]}
    assert seen == {100 + k: T0 + timedelta(minutes=36 + k) for k in range(4)}


def test_replay_meeting_a_unique_key_race_retries_instead_of_exiting_1(tmp_path):
    import json

    from tests import botapi_updates as U
    from tgsync_cli import app as core

    f = tmp_path / "updates.jsonl"
    f.write_text("".join(json.dumps(u) + "\n" for u in (U.bot_added(1_700_000_000),
                                                       U.member(1_700_000_100, 5, "left", "member"))))
    store = open_store("memory:")
    racing = RacingStore(store)
    report = core.replay(f, racing)
    assert racing.raced == 1 and report.invalid == [] and report.applied == 2
    assert store.user_by_telegram_id(5) is not None  # one account: telegram_id is unique


def test_celery_mode_spools_last_seen_when_the_store_is_down_at_shutdown(tmp_path):
    """No broker needed: a known member's message is applied in the serve process itself."""
    from tgsync_cli.runtime.celery_queue import CeleryPipeline

    store = open_store("memory:")
    flaky = FlakyStore(store)
    spool = tmp_path / "pending-events.jsonl"
    engine = engine_on(flaky)
    engine.handle(writers(1)[0])  # r0 is now a known, cached member
    pipe = CeleryPipeline(engine, spool_path=str(spool))
    pipe.start()
    pipe.submit(MessageSeen(CHAT, Person(100, first_name="r0"), T0 + timedelta(hours=3)))
    flaky.fail_next = 10 ** 9
    pipe.stop(timeout=1)
    assert oct(spool.stat().st_mode & 0o777) == "0o600" and "LastSeen" in spool.read_text()
    flaky.fail_next = 0
    again = CeleryPipeline(engine_on(store), spool_path=str(spool))
    again.start()
    again.stop(timeout=1)
    assert store.club_by_group(CHAT.id)["members"][0]["last_seen"] == T0 + timedelta(hours=3)
    assert not spool.exists()



from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tgsync_cli.core.codec import from_dict, to_dict  # noqa: E402
from tgsync_cli.runtime.spool import Spool  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(st.just(None), st.binary(max_size=40).filter(lambda b: b"\n" not in b and b.strip())),
                min_size=1, max_size=12))
def test_whatever_a_spool_holds_every_line_is_replayed_or_kept_in_bad(tmp_path_factory, picks):
    """None stands for a good event line; anything else is arbitrary bytes (at most 40 of them:
    too short to be an event)."""
    d = tmp_path_factory.mktemp("spool")
    spool = d / "spool.jsonl"
    good = [(json.dumps(to_dict(e)) + "\n").encode() for e in writers(len(picks))]
    lines = [good[i] if p is None else p + b"\n" for i, p in enumerate(picks)]
    spool.write_bytes(b"".join(lines))
    items, bad = Spool(spool).load(from_dict)
    expected_good = sum(1 for p in picks if p is None)
    bad_file = d / "spool.jsonl.bad"
    kept_bad = bad_file.read_bytes().split(b"\n")[:-1] if bad_file.exists() else []
    assert len(items) == expected_good and bad == len(picks) - expected_good
    assert [int(b.split(b"\t", 1)[0]) for b in kept_bad] == [n for n, p in enumerate(picks, 1) if p is not None]
    assert (spool.read_bytes().count(b"\n") == len(items)) if items else not spool.exists()
