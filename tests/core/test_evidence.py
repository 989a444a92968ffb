"""The evidence rule folded over every delivery order of small histories: whatever order member
events, listings and messages arrive in, the member ends with the status of the newest event and
`status_at` (the "since" a roster shows) where that stretch began."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import combinations, permutations, product
from typing import List, Tuple

from tests.stores.backends import fold_rule as fold
from tests.stores.backends import join, leave, message
from tgsync_cli.core.evidence import ACTIVE, Observation, decide

T = datetime(2025, 6, 1, 9, 0)
TID = 42


def at(minute: int) -> datetime:
    return T + timedelta(minutes=minute)




def event(kind: str, minute: int) -> Observation:
    if kind == "join":
        return join(TID, at(minute))
    if kind == "promote":
        return join(TID, at(minute), role="organizer")
    if kind == "listed":
        return join(TID, at(minute), source="member_import")
    return leave(TID, at(minute))


def standing(kind: str) -> Tuple[str, str]:
    """The status and role an event says (a leave makes a plain member)."""
    return ("left", "member") if kind == "leave" else (ACTIVE, "organizer" if kind == "promote" else "member")


def stretch(history: List[Tuple[str, int]]) -> Tuple[Tuple[str, str], datetime]:
    """What a reader expects: the newest event's status and role, since the first event of the
    unbroken run of that status and role that ends the history (a departure: since the newest
    leave)."""
    ordered = sorted(history, key=lambda e: e[1])
    last = standing(ordered[-1][0])
    if last[0] != ACTIVE:
        return last, at(ordered[-1][1])
    since = ordered[-1][1]
    for kind, minute in reversed(ordered):
        if standing(kind) != last:
            break
        since = minute
    return last, at(since)


def histories(length: int, kinds=("join", "promote", "listed", "leave")):
    """Every history of `length` member events at distinct minutes, the first one a join."""
    for minutes in combinations(range(1, length + 2), length):
        for rest in product(kinds, repeat=length - 1):
            yield list(zip(("join",) + rest, minutes, strict=True))


def test_any_delivery_order_of_joins_promotions_listings_and_leaves_ends_in_the_same_stretch():
    """Erlan joins, is promoted, listed, leaves and comes back; Telegram delivers it in any order.
    The roster shows the status and role of the newest event, since the start of its stretch."""
    for length in (2, 3, 4):
        for history in histories(length):
            want = stretch(history)
            for order in permutations(history):
                m = fold([event(kind, minute) for kind, minute in order])
                if m is None:  # only leaves so far: a departure note, no membership
                    assert all(kind == "leave" for kind, _ in order)
                    continue
                assert ((m["status"], m["role"]), m["status_at"]) == want, (history, order)


def test_a_message_keeps_the_stretch_of_the_member_event_before_it_in_any_order():
    """Erlan joined at :01 and wrote at :03 and :05; a listing at :04 confirms him. In any order
    he is active by the join, since :01, and the newest message is the proof of presence."""
    steps = [join(TID, at(1)), message(TID, at(3)), join(TID, at(4), source="member_import"), message(TID, at(5))]
    for order in permutations(steps):
        m = fold(list(order))
        assert (m["status"], m["status_at"], m["source"], m["proof_at"]) == (ACTIVE, at(1), "chat_member_event", at(5))


def test_after_a_leave_a_listing_counts_the_stretch_from_itself_not_from_an_earlier_message():
    """Erlan left at :02 and wrote at :04; a listing at :06 says he is in. In any delivery order
    he is active by the listing's member evidence, since :06, the message kept as proof at :04."""
    steps = [join(TID, at(1)), leave(TID, at(2)), message(TID, at(4)), join(TID, at(6), source="member_import")]
    for order in permutations(steps):
        m = fold(list(order))
        assert (m["status"], m["status_at"], m["proof_at"]) == (ACTIVE, at(6), at(4)), order


def test_a_member_the_app_wrote_without_a_join_time_or_route_takes_them_from_the_next_event():
    """The app added Erlan by hand: active, no joined_at, no source. His join at :03 is the
    evidence a roster shows; with the app's joined_at at :03 but no route, the join names it."""
    by_hand = {"user_id": "u-erlan", "telegram_id": TID, "role": "member", "status": ACTIVE}
    for seed in (by_hand, {**by_hand, "joined_at": at(3)}):
        m = decide("club", seed, None, join(TID, at(3))).member
        assert (m["status"], m["joined_at"], m["source"]) == (ACTIVE, at(3), "chat_member_event")
