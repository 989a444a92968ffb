"""Other members' status changes as one engine applies them: who the log names for a removal the
bot made, join notices arriving in the same second as member events, and approvals of join
requests by an admin the update does not name."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests import worlds
from tests.worlds import CHAT, engine_with_club
from tgsync_cli.core.events import ChatRef, MemberState, MemberStatusChanged, Person
from tgsync_cli.core.requests import APPLYING, DONE, PENDING, new_request
from tgsync_cli.stores import open_store

GROUP = ChatRef(CHAT, "supergroup", "Sunday Long Run")
TRAILS = ChatRef(-1009009, "supergroup", "Trail Crew")
T0 = datetime(2025, 3, 1, 7, 0)
BOT = Person(9000, is_bot=True, first_name="Club Sync")
ERLAN, DANA = Person(5, first_name="Erlan"), Person(6, first_name="Dana")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def club_with_erlan_and_dana(store):
    engine = engine_with_club(store, GROUP, T0)
    for p in (ERLAN, DANA):
        engine.handle(MemberStatusChanged(GROUP, p, MemberState("member"), minutes(1)))
    return engine, store.club_by_group(CHAT)["_id"]


def last_change(store, tid):
    e = store.membership_log(telegram_id=tid)[-1]
    return e["to"]["status"], e["source"], e["actor"]


def test_a_removal_the_bot_made_names_who_asked_for_that_removal_and_nobody_else():
    """Coach A asked to remove Erlan; other requests around it are someone else's, another
    club's, not yet applied, or not a removal: the log names coach A."""
    store = open_store("memory:")
    engine, cid = club_with_erlan_and_dana(store)
    engine_with_club(store, TRAILS, T0)
    trails = store.club_by_group(TRAILS.id)["_id"]
    store.add_request(new_request(cid, 5, "remove", "coach_a", minutes(2), state=APPLYING))
    for req in (new_request(trails, 5, "remove", "trails_coach", minutes(3), state=DONE),
                new_request(cid, 6, "remove", "dana_coach", minutes(3), state=APPLYING),
                new_request(cid, 5, "ban", "not_yet", minutes(3), state=PENDING),
                new_request(cid, 5, "approve", "approver", minutes(3), state=DONE)):
        store.add_request(req)

    engine.handle(MemberStatusChanged(GROUP, ERLAN, MemberState("kicked"), minutes(4), actor=BOT))

    assert last_change(store, 5) == ("kicked", "app_request", "coach_a")


@pytest.mark.parametrize("action, state, status", [("ban", "kicked", "kicked"), ("unban", "left", "left")])
def test_a_ban_or_unban_the_bot_made_names_who_asked_for_it(action, state, status):
    store = open_store("memory:")
    engine, cid = club_with_erlan_and_dana(store)
    store.add_request(new_request(cid, 5, action, "coach_a", minutes(2), state=APPLYING))

    engine.handle(MemberStatusChanged(GROUP, ERLAN, MemberState(state), minutes(3), actor=BOT))

    assert last_change(store, 5) == (status, "app_request", "coach_a")


def test_a_removal_the_bot_made_that_nobody_asked_for_is_logged_as_the_bots_own():
    """An operator used the bot's account in Telegram: no request stands behind the kick."""
    store = open_store("memory:")
    engine, _ = club_with_erlan_and_dana(store)

    engine.handle(MemberStatusChanged(GROUP, ERLAN, MemberState("kicked"), minutes(3), actor=BOT))

    assert last_change(store, 5) == ("kicked", "chat_member_event", BOT.id)


def test_two_people_added_in_the_same_second_both_join_when_one_notice_arrives_after_the_others_event():
    """Asel adds Erlan and Dana at once: Erlan's member event comes, then the "joined" notices
    of both (Dana's member event is lost). Erlan's notice repeats what was applied; Dana's does
    not: she is a member."""
    store = open_store("memory:")
    engine = engine_with_club(store, GROUP, T0)
    engine.handle(MemberStatusChanged(GROUP, ERLAN, MemberState("member"), minutes(1)))
    for p in (ERLAN, DANA):
        engine.handle(MemberStatusChanged(GROUP, p, MemberState("member"), minutes(1), via="service_message"))

    assert worlds.roster(store, CHAT) == {5: ("member", "active", "chat_member_event"),
                                          6: ("member", "active", "service_message")}


def test_a_join_request_approved_by_an_admin_telegram_does_not_name_closes_the_request_at_that_time():
    """Telegram may leave out who approved: Erlan is in, and his waiting request is closed as
    approved by an admin at the moment he joined, with no one named."""
    store = open_store("memory:")
    engine = engine_with_club(store, GROUP, T0)
    cid = store.club_by_group(CHAT)["_id"]
    store.add_request(new_request(cid, 5, "approve", None, minutes(1), state="waiting", origin="telegram"))

    engine.handle(MemberStatusChanged(GROUP, ERLAN, MemberState("member"), minutes(2), via_join_request=True))

    assert worlds.roster(store, CHAT)[5][1] == "active"
    req = store.requests_of(cid, telegram_id=5)[-1]
    assert (req["outcome"], req["done_at"], req["done_by"]) == ("approved", minutes(2), None)
