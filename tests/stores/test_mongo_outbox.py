"""MongoDB at the floor of round trips: a first sighting is the account and one guarded `$push`
that carries the membership_log entry in the club's outbox; the flush moves the outbox into the
collection. Two store objects on one mongomock client stand for two processes sharing a server
(the real-process races run in the contract suite against a real server)."""

from datetime import datetime, timedelta

from typing import Any, Callable

import mongomock
import pytest
from pymongo.errors import AutoReconnect

from tests.stores.backends import join, leave, message
from tests.stores.racing import Race, Server, member_filter, pushes_member, track_night
from tgsync_cli.core.errors import StoreUnavailable
from tgsync_cli.core.events import ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.sim.faults import FaultyStore
from tgsync_cli.stores import open_store
from tgsync_cli.stores.mongo import MongoStore, open_mongo
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


# == member writes beyond the outbox: what the roster counts, the app removing a member in the middle
# of a write, the flush's returns and their log entries, one-line errors naming the call. Each
# story runs on `tests.stores.racing`'s Server (mongomock; writers put in the way) ==================
RACE_CHAT = -1007008


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def racing_club(store: MongoStore) -> str:
    return track_night(store, RACE_CHAT)


def reading_as_a_server_does(racing: Server) -> MongoStore:
    """A store whose reads send their projections as to a real server (not the whole array)."""
    store = racing.racing_store()
    store.db.mock = False
    return store


# -- counting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["mongomock", "projections"])
def test_the_roster_counts_telegram_members_and_the_apps_own_members_apart(racing, reader):
    """The app's own members (no Telegram id) are counted apart; one with no status is active,
    as the app treats it; left members count in neither."""
    store = racing.store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    store.observe(cid, join(6, at(1)))
    store.observe(cid, leave(6, at(2)))
    racing.raw.clubs.update_one({"_id": cid}, {"$push": {"members": {"$each": [
        {"user_id": "app_1", "status": "active"}, {"user_id": "app_2"},
        {"user_id": "app_3", "status": "inactive"}, {"user_id": "app_4", "status": "active", "telegram_id": None}]}}})
    read = store if reader == "mongomock" else reading_as_a_server_does(racing)
    assert (read.active_count(cid), read.app_only_active(cid)) == (1, 3)
    assert (read.active_count("club_gone"), read.app_only_active("club_gone")) == (0, 0)


# -- the app removes a member while a write is on its way ------------------------------------------
@pytest.mark.parametrize("newest", ["status_at", "hard_at", "role_at", "proof_at", "last_seen"])
@pytest.mark.parametrize("promoted_at, back", [(10, False), (12, True)],
                         ids=["news no newer than the member held", "newer news"])
def test_a_member_the_app_removed_during_a_write_comes_back_only_on_newer_evidence(racing, promoted_at, back, newest):
    """Whichever of the member's times was the newest (the app may have written any of them)."""
    other = racing.store()
    cid = racing_club(other)
    other.observe(cid, join(5, at(1)))
    racing.raw.clubs.update_one({"_id": cid, "members.telegram_id": 5}, {"$set": {f"members.$.{newest}": at(10)}})
    removal = Race("clubs", "update_one", lambda: racing.raw.clubs.update_one(
        {"_id": cid}, {"$pull": {"members": {"telegram_id": 5}}}), when=member_filter(5))
    mine = racing.racing_store(removal)

    mine.observe(cid, join(5, at(promoted_at), role="organizer"))

    assert removal.ran
    m = mine.member(cid, 5)
    if back:
        assert (m["status"], m["role"]) == ("active", "organizer")
    else:
        assert m is None


# -- the flush brings members back --------------------------------------------------------------
def test_a_return_the_flush_logs_is_whole_and_moved_by_the_next_settle(racing):
    store = racing.store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    store.observe(cid, leave(5, at(2), status="kicked"))
    store.settle()
    known = {c["_id"]: c["version"] for c in store.club_index().clubs}

    store.flush_last_seen({(cid, 5): at(6)}, {(cid, 5): at(3)})
    store.settle()

    m = store.member(cid, 5)
    assert (m["status"], m["status_at"], m["proof_at"], m["last_seen"]) == ("active", at(3), at(6), at(6))
    [entry] = list(racing.raw.membership_log.find({"source": "message_activity"}, {"_id": 0}))
    assert entry == {"club_id": cid, "telegram_id": 5, "at": at(3), "from": {"status": "kicked", "role": "member"},
                     "to": {"status": "active", "role": "member"}, "source": "message_activity", "actor": None,
                     "invite_link": None, "invited_by": None}
    club = racing.raw.clubs.find_one({"_id": cid})
    assert club["log_pending"] == [] and club["version"] == known[cid] + 1
    assert sorted(club) == ["_id", "created_by", "log_pending", "members", "name", "sync", "telegram_group_id",
                            "version"]  # nothing but the club's own fields
    assert sorted(club["members"][0]) == sorted([
        "user_id", "telegram_id", "username", "first_name", "role", "status", "joined_at", "last_seen", "source",
        "status_at", "role_at", "hard_at", "proof_at", "prior_at", "confirmed_at", "seen_times", "invited_by", "invite_link"])


def test_returns_logged_by_two_flushes_in_two_clubs_are_all_moved_by_one_settle(racing):
    store = racing.store()
    cids = [racing_club(store), store.create_club(RACE_CHAT - 1, "Trails", None, {"bot_present": True})[0]["_id"]]
    for cid in cids:
        store.observe(cid, join(5, at(1)))
        store.observe(cid, leave(5, at(2)))
    store.settle()
    store.flush_last_seen({(cids[0], 5): at(6)})
    store.flush_last_seen({(cids[1], 5): at(7)})
    store.settle()
    assert sorted((e["club_id"], e["at"]) for e in racing.raw.membership_log.find({"source": "message_activity"})) == \
        sorted([(cids[0], at(6)), (cids[1], at(7))])
    assert [c.get("log_pending") for c in racing.raw.clubs.find({"_id": {"$in": cids}})] == [[], []]


def test_a_member_the_app_marked_otherwise_inactive_is_brought_back_by_a_newer_message(racing):
    store = racing.store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    racing.raw.clubs.update_one({"_id": cid, "members.telegram_id": 5},
                                {"$set": {"members.$.status": "suspended"}})  # the app's own status
    store.flush_last_seen({(cid, 5): at(6)})
    m = store.member(cid, 5)
    assert (m["status"], m["status_at"]) == ("active", at(6))


def test_a_listing_that_only_confirms_leaves_nothing_to_settle(racing):
    store = racing.store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    store.settle()
    store.observe_many(cid, [join(5, at(30), source="member_import")])
    ops = store.ops
    store.settle()
    assert store.ops == ops  # no round trip: nothing of this process's waits in an outbox


def test_someone_forgotten_who_joins_again_costs_a_newcomers_two_round_trips(racing):
    store = racing.store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    store.forget(5)
    ops = store.ops
    store.observe(cid, join(5, at(9)))
    assert store.ops - ops == 2  # the account, then the guarded push: no read first
    assert store.member(cid, 5)["status_at"] == at(9)


# -- a failing racing: one line that says which call -----------------------------------------------
def down() -> None:
    raise AutoReconnect("connection refused")


def is_departure_id(flt: Any, upd: Any = None, *a: Any, **kw: Any) -> bool:
    return isinstance(upd, dict) and "$addToSet" in upd


CALLS = [
    pytest.param("clubs", "find_one", lambda s, cid: s.active_count(cid), "counting a club's active members",
                 id="active_count"),
    pytest.param("clubs", "find_one", lambda s, cid: s.app_only_active(cid), "counting the app's own active members",
                 id="app_only_active"),
    pytest.param("clubs", "find_one", lambda s, cid: s.observe_many(cid, [join(5, at(3))]), "saving membership changes",
                 id="observe_many"),
    pytest.param("clubs", "update_one", lambda s, cid: s.observe(cid, leave(7, at(3))), "recording a departure",
                 id="departure id"),
    pytest.param("departures", "insert_one", lambda s, cid: s.observe(cid, leave(7, at(3))), "recording a departure",
                 id="departure note"),
    pytest.param("departures", "update_one", lambda s, cid: s.observe(cid, leave(8, at(3))), "recording a departure",
                 id="departure replaced"),
    pytest.param("clubs", "update_one", lambda s, cid: s.flush_last_seen({(cid, 5): at(3)}),
                 "saving when members were last seen", id="flush"),
]


@pytest.mark.parametrize("collection, method, call, words", CALLS)
def test_a_server_failing_a_member_call_says_in_one_line_what_was_being_done(racing, collection, method,
                                                                         call: Callable, words):
    setup = racing.store()
    cid = racing_club(setup)
    setup.observe(cid, join(5, at(1)))
    setup.observe(cid, leave(8, at(1)))  # a departure note to replace
    when = is_departure_id if collection == "clubs" and method == "update_one" and "departure" in words else \
        (lambda *a, **kw: True)
    store = racing.racing_store(Race(collection, method, down, when=when))
    with pytest.raises(StoreUnavailable) as err:
        call(store, cid)
    assert str(err.value) == f"mongodb://mongomock/race: {words} failed (AutoReconnect: connection refused)"


def test_a_listing_for_a_club_the_app_deleted_changes_nothing_and_names_each_person(racing):
    store = racing.store()
    outs = store.observe_many("club_deleted_by_the_app", [join(5, at(1)), join(6, at(1))])
    assert [(o.telegram_id, o.status, o.changed) for o in outs] == [(5, None, False), (6, None, False)]


def test_a_listing_of_members_already_in_the_club_is_one_read_and_one_bulk(racing):
    """Also when it names someone twice; its change is logged, and the next settle moves the
    entry into membership_log."""
    store = racing.store()
    cid = racing_club(store)
    for tid in (5, 6, 7):
        store.observe(cid, join(tid, at(1)))
    store.settle()
    ops = store.ops
    store.observe_many(cid, [join(5, at(30), source="member_import"), join(5, at(30), source="member_import"),
                             join(6, at(30), role="organizer", source="member_import"),
                             join(7, at(30), source="member_import")])
    assert store.ops - ops == 2
    store.settle()
    assert [(e["telegram_id"], e["to"]) for e in racing.raw.membership_log.find({"source": "member_import"})] == [
        (6, {"status": "active", "role": "organizer"})]
    assert racing.raw.clubs.find_one({"_id": cid})["log_pending"] == []


def test_a_listing_leaves_a_role_the_app_gave_unless_telegram_promotes(racing):
    store = racing.store()
    cid = racing_club(store)
    for tid in (5, 6):
        store.observe(cid, join(tid, at(1)))
    for tid in (5, 6):
        racing.raw.clubs.update_one({"_id": cid, "members.telegram_id": tid}, {"$set": {"members.$.role": "coach"}})
    store.observe_many(cid, [join(5, at(30), source="member_import"),
                             join(6, at(30), role="organizer", source="member_import")])
    assert (store.member(cid, 5)["role"], store.member(cid, 6)["role"]) == ("coach", "organizer")
    store.observe(cid, join(5, at(40)))  # a member event one by one leaves it too
    assert store.member(cid, 5)["role"] == "coach"


def test_a_member_call_on_a_club_the_app_deleted_changes_nothing(racing):
    store = racing.store()
    out = store.observe("club_deleted_by_the_app", join(5, at(1)))
    assert (out.telegram_id, out.status, out.changed) == (5, None, False)
    assert store.member("club_deleted_by_the_app", 5) is None


def test_an_entry_another_process_already_moved_does_not_stop_the_rest_from_moving(racing):
    store = racing.store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    store.observe(cid, join(6, at(2)))
    first = racing.raw.clubs.find_one({"_id": cid})["log_pending"][0]
    racing.raw.membership_log.insert_one(dict(first))  # moved by another process, not yet pulled
    store.settle()
    assert sorted(e["telegram_id"] for e in racing.raw.membership_log.find()) == [5, 6]
    assert racing.raw.clubs.find_one({"_id": cid})["log_pending"] == []


def test_a_log_entry_the_server_refuses_stays_in_the_outbox_and_the_settle_says_why(racing):
    """Only an entry already moved (a duplicate key) counts as moved; any other refusal keeps the
    entries where they are, to be moved by a later settle."""
    from pymongo.errors import BulkWriteError

    def refuse() -> None:
        raise BulkWriteError({"writeErrors": [{"index": 0, "code": 121, "errmsg": "Document failed validation"}]})
    setup = racing.store()
    cid = racing_club(setup)
    store = racing.racing_store(Race("membership_log", "insert_many", refuse))
    store.observe(cid, join(5, at(1)))
    with pytest.raises(StoreUnavailable) as err:
        store.settle()
    assert str(err.value).startswith("mongodb://mongomock/race: moving log entries to the log failed")
    assert [e["telegram_id"] for e in racing.raw.clubs.find_one({"_id": cid})["log_pending"]] == [5]
    store.settle()  # the server takes it now
    assert [e["telegram_id"] for e in racing.raw.membership_log.find()] == [5]


def pulls_outbox(flt: Any, upd: Any = None, *a: Any, **kw: Any) -> bool:
    return isinstance(upd, dict) and "$pull" in upd and "log_pending" in upd["$pull"]


def is_member_push(flt: Any, upd: Any = None, *a: Any, **kw: Any) -> bool:
    return isinstance(upd, dict) and "members" in (upd.get("$push") or {})


@pytest.mark.parametrize("collection, method, when, call, words", [
    pytest.param("clubs", "find_one", None, lambda s, cid: s.member(cid, 5), "reading a membership", id="member"),
    pytest.param("clubs", "find", None, lambda s, cid: s.settle(), "moving log entries to the log", id="settle read"),
    pytest.param("clubs", "update_one", pulls_outbox, lambda s, cid: s.settle(), "moving log entries to the log",
                 id="settle pull"),
    pytest.param("clubs", "update_one", member_filter(5),
                 lambda s, cid: s.observe_many(cid, [join(5, at(30), role="organizer", source="member_import")]),
                 "saving membership changes", id="listing bulk"),
])
def test_a_server_failing_a_read_settle_or_listing_bulk_says_so_in_one_line(racing, collection, method, when, call,
                                                                            words):
    setup = racing.store()
    cid = racing_club(setup)
    setup.observe(cid, join(5, at(1)))
    store = racing.racing_store()
    store.observe(cid, join(6, at(2)))  # an entry of this process's in the club's outbox
    racing.races_of(store).append(Race(collection, method, down, when=when or (lambda *a, **kw: True)))
    with pytest.raises(StoreUnavailable) as err:
        call(store, cid)
    assert str(err.value) == f"mongodb://mongomock/race: {words} failed (AutoReconnect: connection refused)"


def test_a_member_this_process_has_read_is_not_taken_for_a_newcomer(racing):
    writer = racing.store()
    cid = racing_club(writer)
    writer.observe(cid, join(5, at(1)))
    fresh = racing.store()
    assert fresh.member(cid, 5)["status"] == "active"
    ops = fresh.ops
    fresh.observe(cid, join(5, at(9), role="organizer"))
    assert fresh.ops - ops == 2  # read and compare-and-set: no account upsert, no push that must miss


def test_a_member_the_app_removed_while_a_complete_listing_was_on_its_way_leaves_no_note(racing):
    other = racing.store()
    cid = racing_club(other)
    for tid in (5, 6):
        other.observe(cid, join(tid, at(1)))
    removal = Race("clubs", "update_one", lambda: racing.raw.clubs.update_one(
        {"_id": cid}, {"$pull": {"members": {"telegram_id": 6}}}), when=member_filter(6))
    mine = racing.racing_store(removal)
    mine.observe_many(cid, [join(5, at(30), source="member_import")], complete_at=at(30))
    assert removal.ran
    assert mine.member(cid, 6) is None and mine.departures_for(cid, [6]) == {}


def test_a_club_the_app_deleted_while_its_outbox_was_settled_stays_deleted(racing):
    store = racing.racing_store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    racing.races_of(store).append(Race("clubs", "update_one",
                                       lambda: racing.raw.clubs.delete_one({"_id": cid}), when=pulls_outbox))
    store.settle()
    assert racing.raw.clubs.find_one({"_id": cid}) is None
    assert [e["telegram_id"] for e in racing.raw.membership_log.find()] == [5]


def test_a_join_after_a_noted_leave_makes_a_whole_membership_and_clears_the_note(racing):
    """The read-decide-write path of a newcomer (a note stops the one-push first sighting): the
    account made at the join, the membership tied to it, the note and its id gone, and the
    club's version moved for caches."""
    store = racing.store()
    cid = racing_club(store)
    store.observe(cid, leave(5, at(1)))
    known = {c["_id"]: c["version"] for c in store.club_index().clubs}
    store.observe(cid, join(5, at(3)))
    user = store.user_by_telegram_id(5)
    m = store.member(cid, 5)
    assert (m["status"], m["status_at"], m["user_id"]) == ("active", at(3), user["_id"])
    assert user["created_at"] == at(3)
    club = racing.raw.clubs.find_one({"_id": cid})
    assert club["departed_ids"] == [] and racing.raw.departures.count_documents({}) == 0
    assert [c["_id"] for c in store.club_index(known).clubs] == [cid]


def test_a_club_the_app_left_with_members_null_gets_its_first_member(racing):
    store = racing.store()
    cid = racing_club(store)
    racing.raw.clubs.update_one({"_id": cid}, {"$set": {"members": None}})
    store.observe(cid, join(5, at(1)))
    assert [m["telegram_id"] for m in racing.raw.clubs.find_one({"_id": cid})["members"]] == [5]


def test_an_entry_written_while_a_settle_runs_is_moved_by_the_next_settle(racing):
    store = racing.racing_store()
    cid = racing_club(store)
    store.observe(cid, join(5, at(1)))
    racing.races_of(store).append(Race("clubs", "update_one", lambda: store.observe(cid, join(6, at(2))),
                                       when=pulls_outbox))
    store.settle()  # moves 5's entry; 6 joins (another thread of this process) before the outbox is emptied
    store.settle()
    assert sorted(e["telegram_id"] for e in racing.raw.membership_log.find()) == [5, 6]
    assert racing.raw.clubs.find_one({"_id": cid})["log_pending"] == []


def test_a_newcomer_after_a_noted_leave_racing_another_process_is_made_once(racing):
    other = racing.store()
    cid = racing_club(other)
    other.observe(cid, leave(5, at(1)))
    racer = Race("clubs", "update_one", lambda: other.observe(cid, join(5, at(2))), when=pushes_member(5), nth=2)
    mine = racing.racing_store(racer)
    mine.observe(cid, join(5, at(3), role="organizer"))
    assert racer.ran
    assert [m["telegram_id"] for m in racing.raw.clubs.find_one({"_id": cid})["members"]] == [5]
    assert mine.member(cid, 5)["role"] == "organizer"
