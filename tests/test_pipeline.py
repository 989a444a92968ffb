"""The work queue: the update loop hands events over; the store being down loses nothing."""

from datetime import datetime, timedelta

from tgsync_cli.cache import MemoryMemberCache
from tgsync_cli.engine import Engine
from tgsync_cli.errors import StoreUnavailable
from tgsync_cli.events import BotStatusChanged, ChatRef, MemberState, MessageSeen, Person
from tgsync_cli.gateway import OfflineGateway
from tgsync_cli.pipeline import Pipeline
from tgsync_cli.store import open_store

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
    e = Engine(store, OfflineGateway(), MemoryMemberCache(), bot_id=9000)
    e.start()
    e.handle(BotStatusChanged(CHAT, None, MemberState("left"), MemberState("member"), T0))
    return e


def writers(n):
    return [MessageSeen(CHAT, Person(100 + i, first_name=f"r{i}"), T0 + timedelta(minutes=i)) for i in range(n)]


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
    assert left == 5 and spool.exists()
    flaky.fail_next = 0  # the store is back; a new process starts
    pipe2 = Pipeline(engine_on(store), spool_path=str(spool))
    assert pipe2.start() == 5
    pipe2.stop(timeout=10)
    assert not spool.exists()
    assert len(store.club_by_group(CHAT.id)["members"]) == 5
