"""MongoDB under concurrency, without a server: another process (or the Ayda Run app) writes
between a store's read and its guarded write, on every guarded write path. Each story ends
with the documents one process applying the same events one after the other would leave: the
write that lost the race is decided again, nothing is lost or doubled.

`tests.stores.racing` puts the other writer in the way at the collection (see its docstring)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, List, Tuple

import pytest

from tests.stores.backends import comparable, join, leave, message
from tests.stores.racing import Race, Server, member_filter, pushes_member, track_night
from tgsync_cli.stores.mongo import MongoStore

CHAT = -1007007
T = datetime(2025, 7, 1, 6, 0)


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def club_of(store: MongoStore) -> str:
    return track_night(store, CHAT)


def one_after_the_other(steps: List[Tuple[str, Any]]) -> dict:
    """The documents one process leaves applying the steps in turn: what every race must end in."""
    store = Server().store()
    cid = club_of(store)
    for how, ob in steps:
        if how == "many":
            store.observe_many(cid, ob)
        else:
            store.observe(cid, ob)
    store.settle()
    return comparable(store)


def log_of(store: MongoStore, cid: str, tid: int) -> List[tuple]:
    store.settle()
    return sorted((e["at"], (e["from"] or {}).get("status"), e["to"]["status"], e["to"]["role"])
                  for e in store.membership_log(club_id=cid, telegram_id=tid))


# -- first sighting: the $push guarded on no member and no departure note -------------------------
def test_a_first_sighting_that_loses_to_another_process_is_decided_again(racing):
    other = racing.store()
    cid = club_of(other)
    racer = lambda: other.observe(cid, message(5, at(3)))
    mine = racing.racing_store(Race("clubs", "update_one", racer, when=pushes_member(5)))

    out = mine.observe(cid, join(5, at(10)))

    assert racing.races_of(mine)[0].ran
    assert out.status == "active" and not out.created  # the other process made the membership
    assert comparable(mine) == one_after_the_other([("one", message(5, at(3))), ("one", join(5, at(10)))])
    m = mine.member(cid, 5)
    assert (m["source"], m["joined_at"], m["status_at"]) == ("message_activity", at(3), at(10))
    assert log_of(mine, cid, 5) == [(at(3), None, "active", "member")]


def test_a_first_sighting_after_a_newer_leave_noted_meanwhile_stays_left(racing):
    other = racing.store()
    cid = club_of(other)
    racer = lambda: other.observe(cid, leave(5, at(20), status="kicked"))
    mine = racing.racing_store(Race("clubs", "update_one", racer, when=pushes_member(5)))

    out = mine.observe(cid, join(5, at(10)))

    assert out.status == "kicked"
    assert comparable(mine) == one_after_the_other([("one", leave(5, at(20), status="kicked")),
                                                    ("one", join(5, at(10)))])
    assert mine.departures_for(cid, [5]) == {}  # the note went with the membership made from it


# -- a change: read, decide, compare-and-set on every field the decision read -----------------------
@pytest.mark.parametrize("theirs", [
    pytest.param(leave(5, at(12), status="kicked"), id="a newer kick"),
    pytest.param(join(5, at(6), role="organizer"), id="an older promotion (its role still applies)"),
    pytest.param(message(5, at(30)), id="a message that only moves last_seen and proof_at"),
])
def test_a_change_that_loses_its_compare_and_set_is_retried_on_what_the_winner_wrote(racing, theirs):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(1)))
    racer = lambda: other.observe(cid, theirs)
    mine = racing.racing_store(Race("clubs", "update_one", racer, when=member_filter(5)))

    mine.observe(cid, leave(5, at(10)))

    assert racing.races_of(mine)[0].ran
    assert comparable(mine) == one_after_the_other([("one", join(5, at(1))), ("one", theirs),
                                                    ("one", leave(5, at(10)))])
    entries = log_of(mine, cid, 5)
    assert len(entries) == len({e[0] for e in entries})  # one entry per change, none doubled


def test_a_change_guarded_on_every_field_it_read_not_only_the_telegram_id(racing):
    """The other process changes only the role; a write guarded on the member's id alone would
    put back the role it read."""
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(1)))
    racer = lambda: other.observe(cid, join(5, at(8), role="organizer"))
    mine = racing.racing_store(Race("clubs", "update_one", racer, when=member_filter(5)))

    mine.observe(cid, join(5, at(4), source="service_message"))  # older, only evidence

    m = mine.member(cid, 5)
    assert (m["role"], m["role_at"], m["status_at"]) == ("organizer", at(8), at(8))


def test_the_apps_own_fields_written_inside_the_window_are_kept(racing):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(1)))

    def app_writes() -> None:
        racing.raw["clubs"].update_one({"_id": cid, "members.telegram_id": 5},
                                       {"$set": {"members.$.pace": "5:10/km", "coach_notes": "hills"}})
    mine = racing.racing_store(Race("clubs", "update_one", app_writes, when=member_filter(5)))

    mine.observe(cid, leave(5, at(10)))

    raw = racing.raw["clubs"].find_one({"_id": cid})
    assert raw["coach_notes"] == "hills"
    assert [(m["status"], m["pace"]) for m in raw["members"]] == [("left", "5:10/km")]


def test_a_change_that_keeps_losing_says_so_instead_of_dropping_the_event(racing):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(1)))
    minutes = iter(range(100, 200))
    races = [Race("clubs", "update_one", lambda: other.observe(cid, message(5, at(next(minutes)))),
                  when=member_filter(5), nth=n) for n in range(1, 9)]
    mine = racing.racing_store(*races)
    from tgsync_cli.core.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="member 5 kept changing"):
        mine.observe(cid, leave(5, at(10)))
    assert all(r.ran for r in races)


# -- a listing: one read, one bulk of compare-and-sets ----------------------------------------------
def test_a_listings_bulk_that_lost_a_race_is_redone_member_by_member(racing):
    other = racing.store()
    cid = club_of(other)
    for tid in (5, 6, 7):
        other.observe(cid, join(tid, at(1)))
    racer = lambda: other.observe(cid, join(6, at(20), role="organizer"))  # newer than the listing
    mine = racing.racing_store(Race("clubs", "update_one", racer, when=member_filter(5)))
    listing = [join(5, at(15), role="organizer", source="member_import"),
               join(6, at(15), source="member_import")]

    outs = mine.observe_many(cid, listing, complete_at=at(15))

    assert racing.races_of(mine)[0].ran
    assert {o.telegram_id: o.status for o in outs} == {5: "active", 6: "active", 7: "left"}
    reference = Server().store()
    rcid = club_of(reference)
    for tid in (5, 6, 7):
        reference.observe(rcid, join(tid, at(1)))
    reference.observe(rcid, join(6, at(20), role="organizer"))
    reference.observe_many(rcid, listing, complete_at=at(15))
    assert comparable(mine) == comparable(reference)
    assert [mine.member(cid, t)["role"] for t in (5, 6, 7)] == ["organizer", "organizer", "member"]


def test_a_listing_racing_the_apps_write_of_a_member_it_lists_loses_nothing(racing):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(1)))

    def app_writes() -> None:
        racing.raw["clubs"].update_one({"_id": cid, "members.telegram_id": 5},
                                       {"$set": {"members.$.shirt": "M"}})
    mine = racing.racing_store(Race("clubs", "update_one", app_writes, when=member_filter(5)))

    mine.observe_many(cid, [join(5, at(15), role="organizer", source="member_import")])

    m = mine.member(cid, 5)
    assert (m["role"], m["status"], m["status_at"]) == ("organizer", "active", at(15))
    assert racing.raw["clubs"].find_one({"_id": cid})["members"][0]["shirt"] == "M"


# -- the departure note: the newer of two racing notes stands --------------------------------------
@pytest.mark.parametrize("mine_at,theirs_at", [(10, 20), (20, 10)], ids=["mine older", "mine newer"])
def test_racing_departure_notes_keep_the_newer(racing, mine_at, theirs_at):
    other = racing.store()
    cid = club_of(other)
    racer = lambda: other.observe(cid, leave(7, at(theirs_at), status="kicked" if theirs_at > mine_at else "left"))
    mine = racing.racing_store(Race("departures", "insert_one", racer))

    mine.observe(cid, leave(7, at(mine_at), status="left" if mine_at < theirs_at else "kicked"))

    assert racing.races_of(mine)[0].ran
    note = mine.departures_for(cid, [7])[7]
    assert (note["status"], note["at"]) == ("kicked", at(max(mine_at, theirs_at)))
    assert mine.member(cid, 7) is None and mine.user_by_telegram_id(7) is None


def test_a_newer_note_written_between_reading_the_old_one_and_replacing_it_stands(racing):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, leave(7, at(5)))
    racer = lambda: other.observe(cid, leave(7, at(30), status="kicked"))
    mine = racing.racing_store(Race("departures", "update_one", racer))

    mine.observe(cid, leave(7, at(10)))

    note = mine.departures_for(cid, [7])[7]
    assert (note["status"], note["at"]) == ("kicked", at(30))
    mine.observe(cid, join(7, at(20)))  # a join older than the standing note: still out
    assert mine.member(cid, 7)["status"] == "kicked"


def test_a_note_pruned_between_its_read_and_its_replacement_is_written_again(racing):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, leave(7, at(5)))
    racer = lambda: other.prune_departures(at(5) + timedelta(days=30))
    mine = racing.racing_store(Race("departures", "update_one", racer))

    mine.observe(cid, leave(7, at(10), status="kicked"))

    assert {k: (v["status"], v["at"]) for k, v in mine.departures_for(cid, [7]).items()} == {7: ("kicked", at(10))}


# -- the outbox: two processes settling the same membership_log entries ----------------------------
def test_two_processes_settling_the_same_entries_keep_each_once(racing):
    writer = racing.store()
    cid = club_of(writer)
    for tid in (5, 6, 7):
        writer.observe(cid, join(tid, at(tid)))
    other = racing.store()
    other.club_index()  # a fresh process finds the outbox left behind
    mine = racing.racing_store(Race("membership_log", "insert_many", other.settle))
    mine.club_index()

    mine.settle()

    assert racing.races_of(mine)[0].ran
    assert sorted(e["telegram_id"] for e in racing.raw["membership_log"].find()) == [5, 6, 7]
    assert [d.get("log_pending") for d in racing.raw["clubs"].find()] == [[]]


def test_a_flush_that_settles_entries_another_flush_moved_meanwhile_does_not_fail(racing):
    writer = racing.store()
    cid = club_of(writer)
    writer.observe(cid, join(5, at(1)))
    other = racing.store()
    other.club_index()
    mine = racing.racing_store(Race("membership_log", "insert_many",
                                    lambda: other.flush_last_seen({(cid, 5): at(3)})))
    mine.club_index()

    assert mine.flush_last_seen({(cid, 5): at(4)}) == 1

    assert [e["telegram_id"] for e in racing.raw["membership_log"].find()] == [5]
    assert mine.member(cid, 5)["last_seen"] == at(4)


# -- the flush: guarded updates racing a member event ---------------------------------------------
def test_a_flush_racing_a_newer_leave_moves_last_seen_but_does_not_bring_them_back(racing):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(1)))
    racer = lambda: other.observe(cid, leave(5, at(40)))
    mine = racing.racing_store(Race("clubs", "update_one", racer, when=member_filter(5)))
    mine.club_index()

    mine.flush_last_seen({(cid, 5): at(30)}, {(cid, 5): at(2)}, {(cid, 5): at(2)})

    assert racing.races_of(mine)[0].ran
    m = mine.member(cid, 5)
    assert (m["status"], m["status_at"], m["last_seen"]) == ("left", at(40), at(30))
    assert comparable(mine) == one_after_the_other([("one", join(5, at(1))), ("one", message(5, at(2))),
                                                    ("one", message(5, at(30))), ("one", leave(5, at(40)))])


def test_a_flush_racing_an_older_leave_still_brings_them_back(racing):
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(1)))
    racer = lambda: other.observe(cid, leave(5, at(20)))
    # the race comes before the flush's first guarded update: every op sees the leave
    mine = racing.racing_store(Race("clubs", "update_one", racer, when=member_filter(5)))
    mine.club_index()

    mine.flush_last_seen({(cid, 5): at(30)}, {(cid, 5): at(25)})

    m = mine.member(cid, 5)
    assert (m["status"], m["last_seen"]) == ("active", at(30))
    assert log_of(mine, cid, 5) == [(at(1), None, "active", "member"), (at(20), "active", "left", "member"),
                                    (at(25), "left", "active", "member")]  # the flush logs its change


# -- the flush dating an account back: guarded on the account's times as read ----------------------
def flushed(cid: str, tid: int, when: datetime) -> tuple:
    key = {(cid, tid): when}
    return key, key, key, {(cid, tid): [when]}


def test_an_account_another_flush_dated_back_meanwhile_is_dated_back_again_from_what_it_holds(racing):
    """Given a runner who joined at 10:00, when this process flushes their message of 9:00 and
    another flushes one of 9:30 between this one's read of the account and its write, the
    membership and the account end at 9:00, as one process flushing both would leave them."""
    other = racing.store()
    cid = club_of(other)
    other.observe(cid, join(5, at(240)))
    racer = lambda: other.flush_last_seen(*flushed(cid, 5, at(210)))
    mine = racing.racing_store(Race("users", "update_one", racer, when=lambda flt, *a, **kw: "_id" in flt))
    mine.flush_last_seen(*flushed(cid, 5, at(180)))
    assert racing.races_of(mine)[0].ran
    u = mine.user_by_telegram_id(5)
    assert (u["created_at"], u["updated_at"]) == (at(180), at(180))
    member = next(m for m in mine.club_by_group(CHAT)["members"] if m["telegram_id"] == 5)
    assert member["joined_at"] == at(180)
