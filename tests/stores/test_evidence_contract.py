"""One table of evidence stories, three forms of the rule: the pure `decide` (folded over the
story in memory), the SQLite store and the MongoDB store (mongomock). Each story ends with the
member a user would see: status, role, source (the route of the earliest evidence) and joined_at.

Steps named "seen" go through the buffered last_seen flush (the set-based SQL and Mongo forms of
the rule); the pure fold reads them as the message observation they stand for."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple

import pytest

from tgsync_cli.core.evidence import ACTIVE, Observation
from tgsync_cli.core.store import Store
from tests.stores.backends import close_backend, fold_rule, join, leave, message, open_backend, person

CHAT = -1005005
T = datetime(2025, 6, 1, 9, 0)
TID = 42


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def register(tid: int, when: datetime) -> Observation:
    return Observation(person(tid), ACTIVE, None, when, "manual_registration")


def seen(tid: int, when: datetime) -> Tuple[str, datetime]:
    return ("seen", when)


Step = Any
# (story, steps, expected (status, role, source, joined_at minute))
CASES: List[Tuple[str, List[Step], Tuple[str, str, str, int]]] = [
    ("a join makes a member by the join's route",
     [join(TID, at(0))], ("active", "member", "chat_member_event", 0)),
    ("a join delivered after a later message still names the join",
     [message(TID, at(5)), join(TID, at(1))], ("active", "member", "chat_member_event", 1)),
    ("a tie goes to the earlier route: member event before message",
     [message(TID, at(3)), join(TID, at(3))], ("active", "member", "chat_member_event", 3)),
    ("a tie goes to the earlier route: admin import before a member event",
     [join(TID, at(2)), join(TID, at(2), role="organizer", source="admin_import")],
     ("active", "organizer", "admin_import", 2)),
    ("a listing after a message keeps the message as evidence",
     [message(TID, at(1)), join(TID, at(4), source="member_import")],
     ("active", "member", "message_activity", 1)),
    ("a leave older than a join changes nothing",
     [join(TID, at(5)), leave(TID, at(2))], ("active", "member", "chat_member_event", 5)),
    ("a later leave holds over an earlier join in any order",
     [leave(TID, at(9)), join(TID, at(1))], ("left", "member", "chat_member_event", 1)),
    ("a kick after a promotion: kicked, and the kick's role",
     [join(TID, at(0), role="organizer"), leave(TID, at(3), status="kicked")],
     ("kicked", "member", "chat_member_event", 0)),
    ("a message strictly after a leave brings the member back",
     [join(TID, at(0)), leave(TID, at(2)), message(TID, at(4))],
     ("active", "member", "chat_member_event", 0)),
    ("a message at the leave's own time does not",
     [join(TID, at(0)), leave(TID, at(2)), message(TID, at(2))],
     ("left", "member", "chat_member_event", 0)),
    ("a deep link registers; an earlier join delivered later names the join",
     [register(TID, at(6)), join(TID, at(2))], ("active", "member", "chat_member_event", 2)),
    ("a message never changes the role",
     [join(TID, at(0), role="organizer"), message(TID, at(3))],
     ("active", "organizer", "chat_member_event", 0)),
    ("a buffered message earlier than the service-message join names messages",
     [join(TID, at(4), source="service_message"), seen(TID, at(2))],
     ("active", "member", "message_activity", 2)),
    ("a buffered message at the same time as a listing wins the tie",
     [join(TID, at(4), source="member_import"), seen(TID, at(4))],
     ("active", "member", "message_activity", 4)),
    ("a buffered message at the same time as a member event loses the tie",
     [join(TID, at(4)), seen(TID, at(4))], ("active", "member", "chat_member_event", 4)),
    ("a buffered message after a leave brings the member back",
     [join(TID, at(0)), leave(TID, at(2)), seen(TID, at(5))],
     ("active", "member", "chat_member_event", 0)),
]


def _as_observation(step: Step) -> Observation:
    if isinstance(step, tuple):
        return message(TID, step[1])
    return step


def fold(steps: List[Step]) -> Optional[Dict[str, Any]]:
    """The pure rule over the story: the member and departure note kept in memory."""
    return fold_rule(_as_observation(step) for step in steps)


def through_store(store: Store, steps: List[Step]) -> Optional[Dict[str, Any]]:
    doc, _ = store.create_club(CHAT, "Evidence", None, {"bot_present": True})
    for step in steps:
        if isinstance(step, tuple):
            store.flush_last_seen({(doc["_id"], TID): step[1]}, {(doc["_id"], TID): step[1]},
                                  {(doc["_id"], TID): step[1]})
        else:
            store.observe(doc["_id"], step)
    store.settle()
    return store.member(doc["_id"], TID)


def summary(member: Optional[Dict[str, Any]]) -> Tuple[str, str, str, int]:
    assert member is not None, "the story made no member"
    minutes = int((member["joined_at"] - T).total_seconds() // 60)
    return (member["status"], member["role"], member["source"], minutes)


@pytest.mark.parametrize("story,steps,expected", CASES, ids=[c[0] for c in CASES])
def test_the_pure_rule_tells_each_story(story: str, steps: List[Step],
                                         expected: Tuple[str, str, str, int]) -> None:
    assert summary(fold(steps)) == expected


@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock"])
@pytest.mark.parametrize("story,steps,expected", CASES, ids=[c[0] for c in CASES])
def test_every_backend_tells_each_story_as_the_pure_rule(backend: str, story: str, steps: List[Step],
                                                         expected: Tuple[str, str, str, int],
                                                         tmp_path: Any) -> None:
    store, _ = open_backend(backend, tmp_path)
    try:
        assert summary(through_store(store, steps)) == expected == summary(fold(steps))
    finally:
        close_backend(store)


# status_at of a member active by messages alone: the earliest message after their newest member
# event, whichever order the messages (flushed or buffered) and a late leave arrive in.
# (story, steps, expected (status, status_at minute))
STATUS_AT: List[Tuple[str, List[Step], Tuple[str, int]]] = [
    ("a message after a departure note, an older one, a late leave between, then one after it",
     [leave(TID, at(100)), message(TID, at(500)), seen(TID, at(150)), leave(TID, at(200)), seen(TID, at(300))],
     ("active", 300)),
    ("the newest first, then a leave, then the ones before it: active since the first after it",
     [message(TID, at(7)), seen(TID, at(6)), leave(TID, at(4)), seen(TID, at(3)), seen(TID, at(1))],
     ("active", 6)),
    ("messages stored on both sides of a leave that arrives last",
     [message(TID, at(3)), seen(TID, at(5)), seen(TID, at(6)), leave(TID, at(4))], ("active", 5)),
    ("a leave older than every message changes nothing",
     [message(TID, at(3)), seen(TID, at(5)), leave(TID, at(1))], ("active", 3)),
    ("a leave newer than every message holds",
     [message(TID, at(3)), seen(TID, at(5)), leave(TID, at(6))], ("left", 6)),
]


def status_since(member: Optional[Dict[str, Any]]) -> Tuple[str, int]:
    assert member is not None, "the story made no member"
    return (member["status"], int((member["status_at"] - T).total_seconds() // 60))


@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock"])
@pytest.mark.parametrize("story,steps,expected", STATUS_AT, ids=[c[0] for c in STATUS_AT])
def test_every_form_of_the_rule_dates_a_stretch_of_messages_alike(backend: str, story: str, steps: List[Step],
                                                                  expected: Tuple[str, int], tmp_path: Any) -> None:
    store, _ = open_backend(backend, tmp_path)
    try:
        assert status_since(through_store(store, steps)) == expected == status_since(fold(steps))
    finally:
        close_backend(store)
