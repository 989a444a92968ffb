"""A Celery worker meets a store outage or loses a race: the task is tried again (Celery's own
back-off) until it applies, never reported as refused. Run eagerly: no broker is involved."""

import os
from datetime import datetime

import pytest

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.codec import to_dict
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.errors import StoreConflict
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState, MemberStatusChanged, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime import celery_queue
from tgsync_cli.sim.faults import FaultyStore
from tgsync_cli.stores import open_store

CHAT = ChatRef(-100717, "supergroup", "Riverside Runners")
T0 = datetime(2025, 7, 6, 7, 0)
ANNA = Person(701, first_name="Anna")
LEFT, MEMBER = MemberState("left"), MemberState("member")


class LosesOneRace:
    """A store whose first member write loses a unique-key race to another worker."""

    def __init__(self, store):
        self._store, self.lost = store, 0

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name not in ("observe", "observe_many") or self.lost:
            return attr

        def lose(*args, **kwargs):
            self.lost += 1
            raise StoreConflict("store: observe lost a race")
        return lose


@pytest.fixture
def club():
    store = open_store("memory:")
    setup = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    setup.start()
    setup.handle(BotStatusChanged(CHAT, None, LEFT, MEMBER, T0))
    return store


def worker_on(monkeypatch, store):
    engine = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    engine.start()
    monkeypatch.setattr(celery_queue, "_engine", engine)
    monkeypatch.setattr(celery_queue, "_engine_pid", os.getpid())


def anna_status(store):
    doc = store.club_by_group(CHAT.id)
    return {m["telegram_id"]: m["status"] for m in doc["members"]}.get(ANNA.id)


def joins():
    return to_dict(MemberStatusChanged(CHAT, ANNA, MEMBER, T0.replace(minute=5), old=LEFT))


def test_a_join_that_meets_a_store_outage_is_applied_once_the_store_is_back(monkeypatch, club):
    faulty = FaultyStore(club)
    worker_on(monkeypatch, faulty)
    faulty.fail_next(2)
    result = celery_queue.apply_event.apply(args=[joins()])
    assert result.get() == "MemberStatusChanged"
    assert faulty.total_injected == 2
    assert anna_status(club) == "active"


def test_a_join_that_loses_a_race_to_another_worker_is_tried_again_not_refused(monkeypatch, club):
    racing = LosesOneRace(club)
    worker_on(monkeypatch, racing)
    result = celery_queue.apply_event.apply(args=[joins()])
    assert result.get() == "MemberStatusChanged"
    assert racing.lost == 1
    assert anna_status(club) == "active"


def test_a_queued_event_about_someone_forgotten_meanwhile_does_not_bring_them_back(monkeypatch, club):
    """Given Anna's join waiting in the queue, when an operator runs forget 701 before a worker
    takes it, the worker drops it: nothing of Anna is stored afterwards."""
    from tgsync_cli import ops
    from tests.ops.test_forget import traces

    worker_on(monkeypatch, club)
    first = celery_queue.apply_event.apply(args=[joins()])
    assert first.get() == "MemberStatusChanged" and anna_status(club) == "active"
    ops.forget(club, None, ANNA.id)  # from another shell: only the store's note reaches the worker
    monkeypatch.setattr("tgsync_cli.runtime.forget_filter.POLL_EVENTS", 1)  # look at once
    late = to_dict(MemberStatusChanged(CHAT, ANNA, MEMBER, T0.replace(minute=9), old=LEFT))
    assert celery_queue.apply_event.apply(args=[late]).get() == "forgotten"
    celery_queue.flush_worker_engine()
    assert traces(club, {ANNA.id}) == []
