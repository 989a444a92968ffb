"""last_seen on a `mongodb://` store: one read of the accounts an old message could date back, one
bulk write of guarded positional updates on the clubs, one of writers per week (the embedded
backends take another path). MongoDB here is mongomock behind pymongo's own client class, so the
`mongodb://` code path runs with no server and nothing leaves the machine."""

from datetime import timedelta

import mongomock
import pymongo
import pytest

from tests.stores.test_last_seen_flush import (CHATS, PEOPLE, T0, club_with_members, last_seen,
                                              late_leave_after_many_flushes)
from tgsync_cli.core.events import MessageSeen
from tgsync_cli.stores import open_store
from tgsync_cli.stores.mongo import MongoStore


@pytest.fixture
def mongo_store(monkeypatch):
    monkeypatch.setattr(pymongo, "MongoClient", mongomock.MongoClient)
    # pymongo >= 4.11 hands bulk updates a `sort` argument that mongomock 4.3 does not take (it
    # is None for UpdateOne without sort, which is all the store sends)
    add_update = mongomock.collection.BulkOperationBuilder.add_update

    def add_update_without_sort(self, *args, sort=None, **kwargs):
        assert sort is None
        return add_update(self, *args, **kwargs)
    monkeypatch.setattr(mongomock.collection.BulkOperationBuilder, "add_update", add_update_without_sort)
    store = open_store("mongodb://localhost:27017/tgsync")
    assert isinstance(store, MongoStore)  # the MongoDB path, not the embedded one
    yield store
    store.close()


def test_a_live_flush_is_one_read_and_two_bulk_writes_and_never_moves_last_seen_backwards(mongo_store):
    """Live messages, newer than every account: the read of the accounts they could date back
    finds none and no account is written. Two more when membership_log entries wait in the
    clubs' outbox: they are moved on the way."""
    e = club_with_members(mongo_store)
    for i, p in enumerate(PEOPLE):
        e.handle(MessageSeen(CHATS[0], p, T0 + timedelta(minutes=10 + i)))
        e.handle(MessageSeen(CHATS[1], p, T0 + timedelta(minutes=30 + i)))
    ops = mongo_store.ops
    assert e.flush() == 2 * len(PEOPLE)
    # the accounts, the outbox as it is now, its entries copied into membership_log, last_seen on
    # the clubs (emptying their outbox in the same bulk), writers per week beside them
    assert mongo_store.ops - ops == 5
    assert mongo_store.log.count_documents({}) == len(mongo_store.membership_log()) > 0
    assert not mongo_store.clubs.count_documents({"log_pending.0": {"$exists": True}})
    for i, p in enumerate(PEOPLE):
        assert last_seen(mongo_store, CHATS[0], p) == T0 + timedelta(minutes=10 + i)
        assert last_seen(mongo_store, CHATS[1], p) == T0 + timedelta(minutes=30 + i)

    e.handle(MessageSeen(CHATS[0], PEOPLE[0], T0 + timedelta(minutes=1)))  # delivered late
    ops = mongo_store.ops
    e.flush()
    assert mongo_store.ops - ops == 3  # no log entry waiting: accounts, last_seen, writers per week
    assert last_seen(mongo_store, CHATS[0], PEOPLE[0]) == T0 + timedelta(minutes=10)
    assert last_seen(mongo_store, CHATS[0], PEOPLE[1]) == T0 + timedelta(minutes=11)  # untouched


def test_old_messages_cost_a_read_of_their_joined_ats_and_one_write_of_the_accounts(mongo_store):
    """Given the runners added at T0, when a history import flushes a message of each from an
    hour before, the flush reads their joined_ats and writes every account in one bulk (five
    round trips, not a few per runner), and each account was created then."""
    e = club_with_members(mongo_store)
    mongo_store.settle()
    for p in PEOPLE:
        e.handle(MessageSeen(CHATS[0], p, T0 - timedelta(hours=1)))
    ops = mongo_store.ops
    e.flush()
    assert mongo_store.ops - ops == 5
    for p in PEOPLE:
        u = mongo_store.user_by_telegram_id(p.id)
        assert u["created_at"] == T0 - timedelta(hours=1)


def test_a_late_leave_after_many_flushes_finds_the_first_message_after_it(mongo_store):
    """As on SQLite: each message flushed on its own, the leave between the second and third
    arrives last, and the runner is active since the third."""
    late_leave_after_many_flushes(mongo_store)
