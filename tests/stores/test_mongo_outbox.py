"""MongoDB at the floor of round trips: a first sighting is the account and one guarded `$push`
that carries the membership_log entry in the club's outbox; the flush moves the outbox into the
collection. Two store objects on one mongomock client stand for two processes sharing a server
(the real-process races run in the contract suite against a real server)."""

from datetime import datetime, timedelta

import mongomock
import pytest

from tests.stores.backends import join, leave, message
from tgsync_cli.core.errors import StoreUnavailable
from tgsync_cli.core.events import ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.sim.faults import FaultyStore
from tgsync_cli.stores import open_store
from tgsync_cli.stores.mongo import open_mongo
from tests.worlds import engine_with_club

CHAT = ChatRef(-100555, "supergroup", "Hill Repeats")
T0 = datetime(2025, 6, 1, 6, 0)


@pytest.fixture
def server():
    return mongomock.MongoClient()


def process(server):
    """A fresh process's store: nothing remembered, the same server."""
    return open_mongo("mongodb://mongomock", "outbox", client=server)


def engine_on(store):
    return engine_with_club(store, CHAT, T0)


def club_id(store):
    return store.club_by_group(CHAT.id)["_id"]


def outbox(store):
    return [e for d in store.clubs.find({}, {"log_pending": 1}) for e in d.get("log_pending") or []]


@pytest.mark.parametrize("uri", ["memory:", "mongomock"])
def test_a_newcomer_costs_at_most_two_round_trips_and_a_change_two(uri, server):
    store = process(server) if uri == "mongomock" else open_store(uri)
    engine = engine_on(store)
    floor = 2 if uri == "mongomock" else 1  # account + guarded push; SQLite does both in one transaction
    before = store.ops
    engine.handle(MessageSeen(CHAT, Person(70, first_name="New"), T0 + timedelta(minutes=1)))
    assert store.ops - before == floor
    before = store.ops
    engine.handle(MemberStatusChanged(CHAT, Person(71, first_name="Joiner"), MemberState("member"),
                                      T0 + timedelta(minutes=2)))
    assert store.ops - before == floor
    before = store.ops
    engine.handle(MemberStatusChanged(CHAT, Person(71, first_name="Joiner"), MemberState("left"),
                                      T0 + timedelta(minutes=3), old=MemberState("member")))
    assert store.ops - before <= 2  # read, then the compare-and-set with its log entry
    cid = club_id(store)
    assert store.member(cid, 70)["status"] == "active" and store.member(cid, 71)["status"] == "left"
    assert [(e["telegram_id"], e["to"]["status"]) for e in store.membership_log(cid)] == [
        (70, "active"), (71, "active"), (71, "left")]


def test_a_flush_moves_the_outbox_into_membership_log_once(server):
    store = process(server)
    engine = engine_on(store)
    for tid in range(100, 110):
        engine.handle(MessageSeen(CHAT, Person(tid, first_name="R"), T0 + timedelta(minutes=tid)))
    assert store.log.count_documents({}) == 0 and len(outbox(store)) == 10
    assert len(store.membership_log(club_id(store))) == 10  # readers see entries not moved yet
    engine.flush()
    assert store.log.count_documents({}) == 10 and outbox(store) == []
    engine.flush()
    assert store.log.count_documents({}) == 10


def test_a_stopped_process_leaves_its_outbox_to_the_next_cold_start(server):
    first = process(server)
    engine = engine_on(first)
    engine.handle(MessageSeen(CHAT, Person(7, first_name="Ivan"), T0 + timedelta(minutes=5)))
    # killed here: nothing moved, nothing closed
    second, third = process(server), process(server)
    for store in (second, third):
        store.club_index()
    assert second.counts()["membership_log"] == 1
    second.settle()
    third.settle()  # the same entry moved twice is kept once
    assert second.log.count_documents({"telegram_id": 7}) == 1 and outbox(second) == []


def test_a_reply_lost_after_the_write_still_logs_the_change_exactly_once(server):
    store = process(server)
    engine = engine_on(store)
    faulty = FaultyStore(store).lose_reply_next(1, only={"observe"})
    with pytest.raises(StoreUnavailable):
        faulty.observe(club_id(store), join(8, T0 + timedelta(minutes=1)))
    store.observe(club_id(store), join(8, T0 + timedelta(minutes=1)))  # the caller's retry
    engine.flush()
    assert [e["to"]["status"] for e in store.membership_log(telegram_id=8)] == ["active"]
    assert store.log.count_documents({"telegram_id": 8}) == 1 and outbox(store) == []


def test_a_failed_write_leaves_no_entry_behind(server):
    store = process(server)
    engine_on(store)
    faulty = FaultyStore(store).fail_next(1, only={"observe"})
    with pytest.raises(StoreUnavailable):
        faulty.observe(club_id(store), join(9, T0 + timedelta(minutes=1)))
    store.settle()
    assert store.membership_log(telegram_id=9) == [] and store.member(club_id(store), 9) is None


def test_forget_takes_the_persons_entries_out_of_the_outbox_too(server):
    writer, admin = process(server), process(server)
    engine = engine_on(writer)
    engine.handle(MessageSeen(CHAT, Person(11, first_name="Gone"), T0 + timedelta(minutes=1)))
    engine.handle(MessageSeen(CHAT, Person(12, first_name="Stays"), T0 + timedelta(minutes=2)))
    admin.forget(11)
    writer.settle()  # the writer still holds 11's entry: it must not come back
    assert [e["telegram_id"] for e in admin.membership_log()] == [12]
    assert admin.log.count_documents({"telegram_id": 11}) == 0


def test_the_app_never_sees_the_backends_own_fields(server):
    store = process(server)
    engine_on(store)
    cid = club_id(store)
    store.observe(cid, leave(13, T0 + timedelta(minutes=9)))   # a departure note
    store.observe(cid, join(14, T0 + timedelta(minutes=1)))    # an outbox entry
    for doc in (store.club_by_id(cid), store.all_clubs()[0], store.export()["clubs"][0]):
        assert not {"version", "departed_ids", "log_pending"} & set(doc)


def test_a_departure_note_holds_against_a_first_sighting_in_a_fresh_process(server):
    one = process(server)
    engine_on(one)
    cid = club_id(one)
    one.observe(cid, leave(15, T0 + timedelta(minutes=10), status="kicked"))
    other = process(server)  # knows nothing: tries the two-round-trip path first
    out = other.observe(cid, message(15, T0 + timedelta(minutes=5)))
    assert out.status == other.member(cid, 15)["status"] == "kicked"  # the later kick holds
    assert other.departures_for(cid, [15]) == {}  # the membership carries it now
    out = other.observe(cid, join(15, T0 + timedelta(minutes=20)))
    assert out.status == "active"


def test_a_note_pruned_away_leaves_only_a_slower_first_sighting(server):
    store = process(server)
    engine_on(store)
    cid = club_id(store)
    store.observe(cid, leave(16, T0))
    store.prune_departures(T0 + timedelta(days=8))
    fresh = process(server)
    before = fresh.ops
    out = fresh.observe(cid, join(16, T0 + timedelta(days=8)))
    assert out.status == "active" and fresh.ops - before > 2  # missed the guard, read, then wrote
    again = process(server)
    before = again.ops
    again.observe(cid, join(17, T0 + timedelta(days=8)))
    assert again.ops - before == 2


def test_two_processes_taking_turns_end_like_one_with_the_same_log(server):
    """Each process's memory of who is a member goes stale as the other writes; the guards, not the
    memory, decide. Same events in the same order: same documents, same log, entry for entry."""
    from tests.stores.backends import comparable, history

    events = history(range(300, 330), seed=11)
    alone = open_mongo("mongodb://mongomock", "alone", client=mongomock.MongoClient())
    pair = [process(server), process(server)]
    ids = [s.create_club(CHAT.id, "Turns", None, {})[0]["_id"] for s in (alone, pair[0])]
    for s in pair:
        s.club_index()
    for i, (how, ob) in enumerate(events):
        for store, cid in ((alone, ids[0]), (pair[i % 3 == 0], ids[1])):
            store.observe(cid, ob) if how == "one" else store.observe_many(cid, [ob])
    for s in (alone, *pair):
        s.settle()

    def log(store):
        return [(e["telegram_id"], e["from"], e["to"], e["at"]) for e in store.membership_log()]
    assert comparable(alone) == comparable(pair[1])
    assert log(alone) == log(pair[1]) and len(log(alone)) > len(range(300, 330))
    assert pair[1].log.count_documents({}) == len(log(alone)) and outbox(pair[1]) == []
