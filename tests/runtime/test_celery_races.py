"""A Celery task that loses a unique-key race to another worker is tried again, never dropped:
the race is a store error (StoreConflict), and a store error that is not a race is refused."""

from __future__ import annotations

from datetime import datetime

from tgsync_cli.core.codec import to_dict
from tgsync_cli.core.errors import StoreConflict, StoreError
from tgsync_cli.core.events import ChatRef, MemberState, MemberStatusChanged, Person
from tgsync_cli.runtime import celery_queue

JOIN = MemberStatusChanged(ChatRef(-100909, "supergroup", "Sunday Long Run"), Person(601, first_name="Boris"),
                           MemberState("member"), datetime(2025, 7, 6, 7, 1))


class Engine:
    """The worker's engine as far as the task sees it: the first attempts fail as told."""

    def __init__(self, *failures):
        self.failures, self.applied = list(failures), []

    def handle(self, event):
        if self.failures:
            raise self.failures.pop(0)
        self.applied.append(event)


def test_a_lost_race_is_tried_again_until_it_applies(monkeypatch):
    engine = Engine(StoreConflict("users.telegram_id 601 created by another worker"))
    monkeypatch.setattr(celery_queue, "worker_engine", lambda: engine)
    assert celery_queue.apply_event.apply(args=[to_dict(JOIN)]).get() == "MemberStatusChanged"
    assert engine.applied == [JOIN]


def test_a_store_error_that_is_no_race_is_refused_not_retried(monkeypatch):
    engine = Engine(StoreError("document too large"))
    monkeypatch.setattr(celery_queue, "worker_engine", lambda: engine)
    assert celery_queue.apply_event.apply(args=[to_dict(JOIN)]).get() == "refused"
    assert engine.applied == []
