"""The work queue: the update loop hands events over; the store being down loses nothing."""

import json
import time
from datetime import datetime, timedelta

from tests.worlds import engine_with_club
from tgsync_cli.core.errors import StoreUnavailable
from tgsync_cli.core.events import ChatRef, MessageSeen, Person
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

CHAT = ChatRef(-100555, "supergroup", "Hill Repeats")
T0 = datetime(2025, 5, 1, 6, 0)


class FlakyStore:
    """Fails the next `n` store calls, as a MongoDB outage would."""

    def __init__(self, store):
        self.store, self.fail_next = store, 0
        store.before_call = self._maybe_fail

    def _maybe_fail(self, name):
        if self.fail_next > 0:
            self.fail_next -= 1
            raise StoreUnavailable(f"injected failure in {name}")


def engine_on(store):
    return engine_with_club(store, CHAT, T0)


def writers(n):
    return [MessageSeen(CHAT, Person(100 + i, first_name=f"r{i}"), T0 + timedelta(minutes=i)) for i in range(n)]


def spooled_writers(spool):
    """The writers in the spool file, in its order."""
    return [json.loads(line)["sender"]["id"] for line in spool.read_text().splitlines()]


def test_events_wait_out_a_store_outage_and_all_arrive(tmp_path):
    store = open_store("memory:")
    flaky = FlakyStore(store)
    pipe = Pipeline(engine_on(store), spool_path=str(tmp_path / "spool.jsonl"), backoff=(0.001, 0.01))
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
    engine = engine_on(store)
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
    pipe = Pipeline(engine_on(store), max_pending=3, spool_path=str(spool), backoff=(30.0, 30.0))
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
    assert pipe.stats() == {"accepted": 3, "applied": 3, "failed": 1, "retries": 0,
                            "replayed": 0, "spooled": 0, "backlog": 0, "store_down": False}
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
