"""The store contract, run against every backend: SPEC §2's guards, the earliest evidence, the
membership log, club lifecycle, erasure, and any order or repetition of the same events ending
in the same documents."""

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgsync_cli.core.store import Observation
from tests.stores.backends import (
    BACKENDS,
    close_backend,
    comparable,
    join,
    leave,
    message,
    open_backend,
    person,
)

CHAT = -1001234
T = datetime(2025, 5, 1, 8, 0)


def at(minutes):
    return T + timedelta(minutes=minutes)


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s, _ = open_backend(request.param, tmp_path)
    yield s
    close_backend(s)


@pytest.fixture
def club(store):
    doc, created = store.create_club(CHAT, "Sunday Long Run", None, {"bot_present": True})
    assert created
    return doc["_id"]


def member(store, cid, tid):
    return store.member(cid, tid)


def test_a_late_older_leave_never_undoes_a_newer_join(store, club):
    store.observe(club, join(5, at(10)))
    out = store.observe(club, leave(5, at(5)))
    assert out.status == "active" and not out.changed
    m = member(store, club, 5)
    assert (m["status"], m["status_at"], m["source"], m["joined_at"]) == ("active", at(10), "chat_member_event", at(10))


def test_equal_times_a_member_event_applies_a_message_does_not(store, club):
    store.observe(club, join(5, at(1)))
    store.observe(club, leave(5, at(2)))
    assert store.observe(club, message(5, at(2))).status == "left"  # not strictly newer
    assert store.observe(club, message(5, at(3))).status == "active"  # the message proves them back
    store.observe(club, leave(5, at(4), status="kicked"))
    assert store.observe(club, join(5, at(4))).status == "active"  # equal time: the later delivered wins


def test_roles_follow_member_events_by_their_own_time(store, club):
    store.observe(club, join(5, at(1)))
    store.observe(club, join(5, at(3), role="organizer"))
    store.observe(club, join(5, at(2), role="member"))  # an older demotion, delivered late
    store.observe(club, message(5, at(4)))  # messages never change roles
    assert member(store, club, 5)["role"] == "organizer"


def test_a_leave_of_a_stranger_makes_no_account_and_holds_against_an_older_join(store, club):
    out = store.observe(club, leave(7, at(10)))
    assert out.status is None and store.user_by_telegram_id(7) is None and member(store, club, 7) is None
    assert [d["telegram_id"] for d in store.export()["departures"]] == [7]
    store.observe(club, join(7, at(5)))  # older join, delivered later
    m = member(store, club, 7)
    assert (m["status"], m["status_at"], m["joined_at"], m["source"]) == ("left", at(10), at(5), "chat_member_event")
    store.observe(club, message(7, at(11)))
    assert member(store, club, 7)["status"] == "active"


def test_a_listing_after_a_departure_note_respects_it_like_a_join(store, club):
    store.observe(club, leave(8, at(10), status="kicked"))
    store.observe_many(club, [join(8, at(5), source="member_import")])
    assert member(store, club, 8)["status"] == "kicked"


def test_the_earliest_evidence_names_the_route_and_the_join_time(store, club):
    store.observe(club, message(5, at(10)))
    store.observe(club, join(5, at(4)))  # the join, delivered after a later message
    m = member(store, club, 5)
    assert (m["source"], m["joined_at"]) == ("chat_member_event", at(4))
    store.observe(club, message(6, at(7)))
    store.observe(club, join(6, at(7), source="service_message"))  # a tie goes to the route order
    assert member(store, club, 6)["source"] == "message_activity"
    store.observe(club, join(6, at(7), source="admin_import"))
    assert member(store, club, 6)["source"] == "admin_import"


def test_the_log_has_one_entry_per_real_change_and_none_for_duplicates(store, club):
    for ob in (join(5, at(1), actor=1, invite_link="spring-run"), join(5, at(1)), join(5, at(2), role="organizer"),
               leave(5, at(3)), leave(5, at(3)), leave(5, at(0))):
        store.observe(club, ob)
    log = store.membership_log(club_id=club)
    assert [(e["from"], e["to"]) for e in log] == [
        (None, {"status": "active", "role": "member"}),
        ({"status": "active", "role": "member"}, {"status": "active", "role": "organizer"}),
        ({"status": "active", "role": "organizer"}, {"status": "left", "role": "member"})]
    assert (log[0]["actor"], log[0]["invite_link"], log[0]["at"]) == (1, "spring-run", at(1))


def test_an_invite_link_join_records_who_invited(store, club):
    store.observe(club, join(5, at(1), invited_by=1, invite_link="https://t.me/+abc"))
    m = member(store, club, 5)
    assert (m["invited_by"], m["invite_link"]) == (1, "https://t.me/+abc")
    store.settle()
    [entry] = store.membership_log(club, telegram_id=5)
    assert (entry["invited_by"], entry["invite_link"]) == (1, "https://t.me/+abc")  # the log says so too
    store.observe(club, join(6, at(1)))  # no link: the document holds no invite keys at all
    assert not {"invited_by", "invite_link"} & set(member(store, club, 6))


def test_a_complete_listing_marks_the_unlisted_left_and_reports_them(store, club):
    for tid in (1, 2, 3):
        store.observe(club, join(tid, at(1)))
    outs = store.observe_many(club, [join(1, at(5), source="member_import")], complete_at=at(5))
    assert sorted(o.telegram_id for o in outs if o.changed and o.status == "left") == [2, 3]
    assert store.active_count(club) == 1
    store.settle()
    left = sorted((e["telegram_id"], e["at"], e["source"]) for e in store.membership_log(club)
                  if e["to"]["status"] == "left")
    assert left == [(2, at(5), "member_import"), (3, at(5), "member_import")]


def test_an_organizer_a_complete_listing_no_longer_names_has_left_as_a_plain_member(store, club):
    store.observe(club, join(4, at(1), role="organizer"))
    store.observe_many(club, [], complete_at=at(5))
    assert status_times(store, club, 4) == ("left", "member", at(5))
    assert member(store, club, 4)["role_at"] == at(5)


def test_a_message_or_deep_link_in_the_same_second_as_a_strangers_leave_does_not_make_them_active(store, club):
    store.observe(club, leave(7, at(10)))
    store.observe(club, message(7, at(10)))
    store.observe(club, leave(8, at(10), status="kicked"))
    store.observe(club, Observation(person(8), "active", None, at(10), "manual_registration"))
    assert [(member(store, club, t)["status"], member(store, club, t)["status_at"]) for t in (7, 8)] == [
        ("left", at(10)), ("kicked", at(10))]


def test_a_promotion_in_the_same_second_as_the_join_makes_an_organizer(store, club):
    store.observe(club, join(5, at(3)))
    store.observe(club, join(5, at(3), role="organizer"))
    assert (member(store, club, 5)["role"], member(store, club, 5)["role_at"]) == ("organizer", at(3))


def test_the_departure_note_goes_once_a_membership_is_made_from_it(store, club):
    store.observe(club, leave(7, at(10)))
    store.observe(club, join(7, at(5)))  # the older join, delivered later: a left member now
    assert member(store, club, 7)["status"] == "left"
    assert store.departures_for(club, [7]) == {} and store.export()["departures"] == []


def status_times(store, cid, tid):
    m = member(store, cid, tid)
    return m["status"], m["role"], m["status_at"]


def test_a_listing_that_confirms_a_member_leaves_status_at_where_the_join_set_it(store, club):
    store.observe(club, join(5, at(1)))
    store.observe(club, join(6, at(2), role="organizer"))
    store.observe_many(club, [join(5, at(30), source="member_import"),
                              join(6, at(30), role="organizer", source="member_import")])
    store.observe(club, join(5, at(31), source="service_message"))  # a join notice says the same
    assert status_times(store, club, 5) == ("active", "member", at(1))
    assert status_times(store, club, 6) == ("active", "organizer", at(2))
    assert member(store, club, 5)["hard_at"] == at(31)  # the newest confirmation still guards
    assert store.observe(club, leave(5, at(20))).status == "active"  # older than the listing: stale
    assert [e["to"] for e in store.membership_log(club_id=club, telegram_id=5)] == [
        {"status": "active", "role": "member"}]


def test_a_listing_that_changes_status_or_role_moves_status_at_to_the_listing(store, club):
    for tid in (5, 6, 7):
        store.observe(club, join(tid, at(1)))
    store.observe_many(club, [join(5, at(30), source="member_import"),
                              join(6, at(30), role="organizer", source="member_import")],
                       complete_at=at(30))
    assert status_times(store, club, 5) == ("active", "member", at(1))
    assert status_times(store, club, 6) == ("active", "organizer", at(30))
    assert status_times(store, club, 7) == ("left", "member", at(30))


def test_the_stretch_a_listing_confirmed_is_the_same_in_any_delivery_order(store, club):
    """A late older join confirming the listed status moves status_at back to itself; a late
    leave between them means the status was set after that leave."""
    store.observe_many(club, [join(5, at(30), source="member_import"),
                              join(6, at(30), source="member_import")])
    store.observe(club, join(5, at(3)))  # delivered after the listing
    store.observe(club, join(6, at(3)))
    store.observe(club, leave(6, at(10)))  # and a leave between the two, later still
    assert status_times(store, club, 5)[2] == at(3)
    assert status_times(store, club, 6)[2] == at(30)
    store.observe(club, join(6, at(20)))  # the join after that leave: the stretch began there
    assert status_times(store, club, 6)[2] == at(20)
    store.observe(club, join(7, at(1)))
    store.observe(club, join(7, at(30), role=None, source="service_message"))  # confirms, says no role
    store.observe(club, leave(7, at(10)))  # a late leave whose role still applies by its clock
    assert status_times(store, club, 7) == ("active", "member", at(30))


def test_club_lifecycle(store, club):
    again, created = store.create_club(CHAT, "Other title", None, {})
    assert not created and again["_id"] == club
    assert store.update_sync(club, {"bot_is_admin": True, "bot_status_at": at(5)}, guard_at=at(5))
    assert not store.update_sync(club, {"bot_is_admin": False, "bot_status_at": at(4)}, guard_at=at(4))
    assert store.club_by_id(club)["sync"]["bot_is_admin"] is True
    assert store.claim_welcome(club) and not store.claim_welcome(club)
    store.release_welcome(club)
    assert store.claim_welcome(club)
    store.migrate_club(club, CHAT, -100999)
    assert store.club_by_group(CHAT)["_id"] == club == store.club_by_group(-100999)["_id"]
    store.set_club_username(club, "@sundaylong")
    assert store.club_by_username("sundaylong")["telegram_group_id"] == -100999
    assert store.club_by_group(-5) is None


def test_a_re_warm_reads_only_the_clubs_that_changed(store, club):
    other, _ = store.create_club(-1005, "Trails", None, {})
    store.observe(club, join(5, at(1)))
    first = store.club_index()
    ours = {club, other["_id"]}  # (an app-shaped database holds the app's clubs too)
    assert {c["_id"]: c["active"] for c in first.clubs if c["_id"] in ours} == {club: [5], other["_id"]: []}
    known = {c["_id"]: c["version"] for c in first.clubs}
    assert store.club_index(known).clubs == []
    store.observe(other["_id"], join(6, at(2)))
    store.observe(club, message(5, at(3)))  # nothing a cache would notice changed here
    assert [(c["_id"], c["active"]) for c in store.club_index(known).clubs] == [(other["_id"], [6])]


def test_last_seen_moves_only_forward_and_flush_carries_message_evidence(store, club):
    store.observe(club, join(5, at(10), source="service_message"))
    store.flush_last_seen({(club, 5): at(20)}, {(club, 5): at(10)})
    store.flush_last_seen({(club, 5): at(15)})
    m = member(store, club, 5)
    assert m["last_seen"] == at(20) and m["source"] == "message_activity"  # a tie goes to messages
    assert m["proof_at"] == at(20)  # the newest sign of presence never moves back either


def test_a_writer_whose_first_message_was_last_week_counts_in_both_weeks(store, club):
    store.observe(club, join(5, at(0)))
    monday = datetime(2025, 5, 5, 8, 0)
    store.flush_last_seen({(club, 5): monday + timedelta(days=1)}, {(club, 5): monday - timedelta(days=2)})
    assert store.writers_by_week(club) == {"2025-W18": 1, "2025-W19": 1}


def test_a_change_to_a_member_already_in_the_club_is_seen_by_a_cache_watching_the_version(store, club):
    """A leave and a listing's promotion of known members each move the club's version; a
    listing that only confirms does not (caches would reload for nothing)."""
    for tid in (5, 6):
        store.observe(club, join(tid, at(1)))
    steps = [lambda: store.observe(club, leave(5, at(2))),
             lambda: store.observe_many(club, [join(6, at(3), role="organizer", source="admin_import")]),
             lambda: store.observe_many(club, [join(6, at(4), role="organizer", source="admin_import")])]
    seen = []
    for step in steps:
        known = {c["_id"]: c["version"] for c in store.club_index().clubs}
        step()
        seen.append([c["_id"] for c in store.club_index(known).clubs])
    assert seen == [[club], [club], []]


def test_a_newcomer_is_tied_to_an_account_made_at_their_join(store, club):
    store.observe(club, leave(5, at(1)))  # a note first: the newcomer takes the read-decide path
    for tid in (5, 6):
        store.observe(club, join(tid, at(3)))
        user = store.user_by_telegram_id(tid)
        assert (member(store, club, tid)["user_id"], user["created_at"]) == (user["_id"], at(3))


def test_a_flush_with_nothing_buffered_costs_no_store_call(store, club):
    """The pipeline's timer flushes every few seconds, also when nobody wrote."""
    ops = store.ops
    assert store.flush_last_seen({}) == 0
    assert store.flush_last_seen({}, {}, {}) == 0
    assert store.ops == ops


def test_a_member_active_by_messages_alone_is_active_since_their_earliest_message(store, club):
    """The message at 52 reached the store first; the one at 33 only the flush (hot path). A
    member event at 40 makes the earlier message count for nothing for a second member."""
    store.observe(club, message(5, at(52)))
    store.observe(club, join(6, at(40)))
    store.observe(club, message(6, at(52)))
    store.flush_last_seen({(club, 5): at(52), (club, 6): at(52)}, {(club, 5): at(33), (club, 6): at(33)},
                          {(club, 5): at(33), (club, 6): at(33)})
    five, six = member(store, club, 5), member(store, club, 6)
    assert (five["status_at"], five["joined_at"]) == (at(33), at(33))
    # for 6 the message at 33 is the earliest evidence (source, joined_at), but their status
    # stands since the member event at 40
    assert (six["status_at"], six["joined_at"], six["source"]) == (at(40), at(33), "message_activity")


def test_forget_erases_the_person_everywhere_and_nobody_else(store, club):
    uid = store.upsert_user(person(1), at(0))
    store.create_club(-1006, "Founded by Asel", uid, {})
    for ob in (join(1, at(1)), join(2, at(1), actor=1), leave(3, at(2))):
        store.observe(club, ob)
    before = store.membership_log(telegram_id=2)
    rep = store.forget(1)
    assert rep["accounts"] == 1 and rep["created_by_cleared"] == 1 and len(rep["clubs"]) == 1
    assert store.user_by_telegram_id(1) is None and member(store, club, 1) is None
    assert store.membership_log(telegram_id=1) == []
    assert [e["actor"] for e in store.membership_log(telegram_id=2)] == [None] * len(before)
    assert member(store, club, 2)["status"] == "active"
    assert store.forget(3)["departures"] == 1


# -- any order, any repetition ---------------------------------------------------------------------
PEOPLE = (11, 12, 13)


@st.composite
def histories(draw):
    """Per person: member events at distinct times, at most one message (the store keeps the
    newest message time, not every one: see the report), listings, and leaves of strangers."""
    events = []
    for tid in PEOPLE:
        times = draw(st.lists(st.integers(0, 30), min_size=0, max_size=4, unique=True))
        for t in times:
            kind = draw(st.sampled_from(["join", "promote", "leave", "kick", "listed", "admin"]))
            if kind == "join":
                events.append(("one", join(tid, at(t))))
            elif kind == "promote":
                events.append(("one", join(tid, at(t), role="organizer")))
            elif kind in ("leave", "kick"):
                events.append(("one", leave(tid, at(t), status="left" if kind == "leave" else "kicked")))
            elif kind == "listed":
                events.append(("many", join(tid, at(t), source="member_import")))
            else:
                events.append(("many", join(tid, at(t), role="organizer", source="admin_import")))
        if draw(st.booleans()):
            t = draw(st.integers(0, 31))
            events.append(("one", message(tid, at(t)) if draw(st.booleans()) else
                           Observation(person(tid), "active", None, at(t), "manual_registration")))
    return events


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=histories(), data=st.data())
def test_any_permutation_with_duplicates_ends_in_the_same_documents(kind, events, data, tmp_path_factory):
    stores = []
    for order in (events, data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events or [None]),
                                                                               max_size=3)) if events else []))):
        s, _ = open_backend(kind, tmp_path_factory.mktemp("perm"))
        cid = s.create_club(CHAT, "Perm", None, {})[0]["_id"]
        for item in order:
            if item is None:
                continue
            how, ob = item
            if how == "one":
                s.observe(cid, ob)
            else:
                s.observe_many(cid, [ob])
        stores.append(s)
    try:
        assert comparable(stores[0]) == comparable(stores[1])
    finally:
        for s in stores:
            close_backend(s)


def test_a_message_that_brings_a_kicked_member_back_in_the_flush_is_logged(store, club):
    """`history`, `member` and `stats` read the log: both backends must hold this entry."""
    store.observe(club, join(5, at(1)))
    store.observe(club, leave(5, at(2), status="kicked"))
    store.flush_last_seen({(club, 5): at(3)})  # another process's cache still had them active
    store.settle()
    m = member(store, club, 5)
    assert (m["status"], m["status_at"]) == ("active", at(3))
    last = store.membership_log(club, telegram_id=5)[-1]
    assert (last["from"], last["to"], last["at"], last["source"]) == (
        {"status": "kicked", "role": "member"}, {"status": "active", "role": "member"}, at(3), "message_activity")
    store.flush_last_seen({(club, 5): at(4)})  # already active: no second entry
    store.settle()
    assert len(store.membership_log(club, telegram_id=5)) == 3


def test_messages_that_reach_the_store_only_by_the_flush_bring_members_back_since_the_first_that_counts(store, club):
    """Another process's cache still had them active. An organizer kicked at 2 who wrote at 3
    and 6 is active since 3; a member who left at 4 and wrote at 3 and 6 is active since 6 (the
    message at 3 came before they left); one who left at 7 stays left. Every return is logged,
    and a cache watching the club's version sees the change."""
    store.observe(club, join(5, at(1), role="organizer"))  # a kick makes them a plain member
    store.observe(club, leave(5, at(2), status="kicked"))
    for tid, left_at in ((6, 4), (7, 7)):
        store.observe(club, join(tid, at(1)))
        store.observe(club, leave(tid, at(left_at)))
    known = {c["_id"]: c["version"] for c in store.club_index().clubs}

    store.flush_last_seen({(club, t): at(6) for t in (5, 6, 7)}, {(club, t): at(3) for t in (5, 6, 7)})
    store.settle()

    rows = {t: member(store, club, t) for t in (5, 6, 7)}
    assert {t: (m["status"], m["role"], m["status_at"], m["last_seen"]) for t, m in rows.items()} == {
        5: ("active", "member", at(3), at(6)), 6: ("active", "member", at(6), at(6)),
        7: ("left", "member", at(7), at(6))}
    returns = [(e["telegram_id"], e["from"], e["to"], e["at"], e["source"])
               for e in store.membership_log(club) if e["to"]["status"] == "active" and e["at"] > at(1)]
    assert sorted(returns) == [
        (5, {"status": "kicked", "role": "member"}, {"status": "active", "role": "member"}, at(3), "message_activity"),
        (6, {"status": "left", "role": "member"}, {"status": "active", "role": "member"}, at(6), "message_activity")]
    assert [c["_id"] for c in store.club_index(known).clubs] == [club]


def test_a_club_is_found_by_its_username_in_any_case(store, club):
    store.set_club_username(club, "@SundayLong")
    assert store.club_by_username("sundaylong")["_id"] == club
    assert store.club_by_username("SUNDAYLONG")["_id"] == club
    assert store.club_by_username("sunday_long") is None


# -- the embedded store's file, shared with other processes ---------------------------------------
def _file_of(store) -> str:
    return next(row[2] for row in store._conn.execute("PRAGMA database_list") if row[1] == "main")


def test_roster_reads_never_wait_for_another_process_holding_the_write_lock(tmp_path):
    """`serve` reads a member and counts the club while an import in another process writes:
    the reads answer from what was committed, they do not queue behind the writer."""
    import sqlite3
    import threading

    store, _ = open_backend("sqlite-file", tmp_path)
    cid = store.create_club(CHAT, "Sunday Long Run", None, {"bot_present": True})[0]["_id"]
    store.observe(cid, join(5, at(1)))
    writer = sqlite3.connect(_file_of(store), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    answers: list = []
    reader = threading.Thread(target=lambda: answers.extend(
        [store.member(cid, 5)["status"], store.active_count(cid)]), daemon=True)
    try:
        reader.start()
        reader.join(10)
        assert answers == ["active", 1]
    finally:
        writer.execute("ROLLBACK")
        reader.join(40)
        writer.close()
        close_backend(store)


@pytest.mark.parametrize("call, words", [
    (lambda s, cid: s.member(cid, 5), "reading a membership failed"),
    (lambda s, cid: s.active_count(cid), "counting a club's active members failed"),
    (lambda s, cid: s.observe(cid, join(6, at(2))), "saving a membership change failed"),
    (lambda s, cid: s.observe_many(cid, [join(6, at(2))]), "saving membership changes failed"),
    (lambda s, cid: s.flush_last_seen({(cid, 5): at(3)}), "saving when members were last seen failed"),
])
def test_a_member_call_on_a_damaged_file_says_what_it_was_doing(tmp_path, call, words):
    """Someone renamed a table by hand: the one-line error says which of tgsync's calls failed."""
    import sqlite3

    from tgsync_cli.core.errors import StoreError

    store, _ = open_backend("sqlite-file", tmp_path)
    cid = store.create_club(CHAT, "Sunday Long Run", None, {"bot_present": True})[0]["_id"]
    store.observe(cid, join(5, at(1)))
    with sqlite3.connect(_file_of(store), isolation_level=None) as hand:
        hand.execute("ALTER TABLE memberships RENAME TO memberships_old")
    try:
        with pytest.raises(StoreError) as err:
            call(store, cid)
        assert words in str(err.value) and "memberships" in str(err.value)
    finally:
        close_backend(store)


def test_writers_counted_in_a_batch_sqlite_rolled_back_itself_are_counted_again(tmp_path):
    """A disk error makes SQLite end a batch's transaction on its own: the week's writers it held
    are gone, so the next flush must write them again (not trust that they were written)."""
    store, _ = open_backend("sqlite-file", tmp_path)
    cid = store.create_club(CHAT, "Sunday Long Run", None, {"bot_present": True})[0]["_id"]
    store.observe(cid, join(5, at(1)))
    try:
        with store.batch():
            store.flush_last_seen({(cid, 5): at(10)})
            store._conn.execute("ROLLBACK")  # what SQLite does itself on a full disk or an I/O error
        assert store.writers_by_week(cid) == {}
        store.flush_last_seen({(cid, 5): at(11)})
        assert sum(store.writers_by_week(cid).values()) == 1
    finally:
        close_backend(store)
