"""An account's created_at, updated_at and names are functions of the events that met it, not of
the order they arrive in: created_at is the earliest of them, updated_at the newest, and the names
are the newest event's. On every backend, the app's shared database (string dates) included."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tgsync_cli.core.events import Person
from tests.stores.backends import close_backend, open_backend

T = datetime(2025, 3, 1, 8, 0)
TID = 8_800_001  # no account of the app's has this id: tgsync makes it

# (minute, first name) of each event that meets the account: distinct minutes (a tie is the
# later delivered's, so not order-free by design)
meetings = st.lists(st.tuples(st.integers(0, 500), st.sampled_from(["Aru", "Dana", "Erlan"])),
                    min_size=1, max_size=6, unique_by=lambda m: m[0])


def account_after(backend: str, tmp_path: Any, events: List[Tuple[int, str]]) -> Tuple[Any, ...]:
    store, _ = open_backend(backend, tmp_path)
    try:
        for minute, name in events:
            store.upsert_user(Person(TID, first_name=name, username=name.lower()), T + timedelta(minutes=minute))
        u = store.user_by_telegram_id(TID)
        return (u["created_at"], u["updated_at"], u["first_name"], u["username"])
    finally:
        close_backend(store)


@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock", "mongomock-app"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=meetings, data=st.data())
def test_any_order_of_the_events_meeting_an_account_ends_in_the_same_account(backend, tmp_path, events, data):
    shuffled = data.draw(st.permutations(events))
    first, last = min(events), max(events)
    expected = (T + timedelta(minutes=first[0]), T + timedelta(minutes=last[0]), last[1], last[1].lower())
    assert account_after(backend, tmp_path, shuffled) == expected


def test_an_older_event_delivered_late_dates_the_account_back_and_keeps_the_newer_names(tmp_path):
    """Given an account first met at 10:00 as Dana, when an event of 9:00 naming her Aru arrives
    later, the account was created at 9:00 and is still Dana, updated at 10:00 (MongoDB here)."""
    got = account_after("mongomock", tmp_path, [(120, "Dana"), (60, "Aru")])
    assert got == (T + timedelta(minutes=60), T + timedelta(minutes=120), "Dana", "dana")


def test_an_account_the_app_holds_keeps_its_own_created_at_and_fields(tmp_path):
    """Given the app's account of a runner (a phone, string dates, created 2024-12-01 10:00), when
    an event from before the app knew them arrives, created_at stays the app's; a newer one moves
    updated_at (in the app's string form) and the Telegram names, and nothing else of the app's."""
    from tests.app_db import PLAIN

    store, _ = open_backend("mongomock-app", tmp_path)
    try:
        store.upsert_user(Person(PLAIN, first_name="Old", username="old"), datetime(2024, 6, 1))
        store.upsert_user(Person(PLAIN, first_name="Plain2", username="plain2"), datetime(2025, 1, 5))
        raw = store.users.find_one({"telegram_id": PLAIN})
        assert raw["created_at"] == "2024-12-01T10:00:00Z" and raw["phone"] == "+7 700 000 0000"
        assert raw["updated_at"] == "2025-01-05T00:00:00Z" and raw["first_name"] == "Plain2"
    finally:
        close_backend(store)



def two_groups(store) -> Tuple[Any, Any]:
    """Two clubs the runner can belong to: A and B."""
    return (store.create_club(-1009001, "A", None, {})[0], store.create_club(-1009002, "B", None, {})[0])

@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock", "mongomock-app"])
def test_a_join_delivered_after_a_later_one_dates_the_account_back(backend, tmp_path):
    """Given a runner first met by a join at 10:00, when their join of 9:00 in the same group
    arrives late, the account was created and last updated at 9:00, as if delivered in order
    (the 10:00 join met a member that existed already). In a second group they joined at 9:30:
    updated_at stays the newest group's first evidence."""
    from tests.stores.backends import join

    store, _ = open_backend(backend, tmp_path)
    try:
        a, b = two_groups(store)
        store.observe(a["_id"], join(TID, T + timedelta(minutes=120)))
        store.observe(a["_id"], join(TID, T + timedelta(minutes=60)))
        u = store.user_by_telegram_id(TID)
        assert (u["created_at"], u["updated_at"]) == (T + timedelta(minutes=60), T + timedelta(minutes=60))
        store.observe(b["_id"], join(TID, T + timedelta(minutes=90)))
        store.observe(a["_id"], join(TID, T + timedelta(minutes=30)))
        u = store.user_by_telegram_id(TID)
        assert (u["created_at"], u["updated_at"]) == (T + timedelta(minutes=30), T + timedelta(minutes=90))
    finally:
        close_backend(store)


@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock", "mongomock-app"])
def test_a_late_dm_block_does_not_date_the_account_back(backend, tmp_path):
    """Given an account last updated at 10:00, when a block of the bot from 8:00 arrives late,
    the account is blocked and still updated at 10:00."""
    store, _ = open_backend(backend, tmp_path)
    try:
        store.upsert_user(Person(TID, first_name="Aru"), T + timedelta(minutes=120))
        assert store.set_dm_blocked(TID, True, T)
        u = store.user_by_telegram_id(TID)
        assert (u["dm_blocked"], u["updated_at"]) == (True, T + timedelta(minutes=120))
    finally:
        close_backend(store)


def flush_message(store, club_id: str, tid: int, at: datetime) -> None:
    """A buffered message of `tid` written by the last_seen flush, as the pipeline hands it over."""
    store.flush_last_seen({(club_id, tid): at}, {(club_id, tid): at}, {(club_id, tid): at}, {(club_id, tid): [at]})


def account_times(store, tid: int = TID) -> Tuple[Any, Any]:
    u = store.user_by_telegram_id(tid)
    return u["created_at"], u["updated_at"]


@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock", "mongomock-app"])
def test_an_old_message_flushed_after_the_join_dates_the_account_back(backend, tmp_path):
    """Given a runner who joined at 10:00 (their account made then), when a history import
    flushes a message of theirs from 9:00, the account was created and last updated at 9:00:
    the 10:00 join met someone who was a member already."""
    from tests.stores.backends import join

    store, _ = open_backend(backend, tmp_path)
    try:
        a, _ = store.create_club(-1009001, "A", None, {})
        store.observe(a["_id"], join(TID, T + timedelta(minutes=120)))
        flush_message(store, a["_id"], TID, T + timedelta(minutes=60))
        assert account_times(store) == (T + timedelta(minutes=60), T + timedelta(minutes=60))
    finally:
        close_backend(store)


@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock", "mongomock-app"])
def test_old_messages_in_two_groups_date_the_account_back_to_the_newest_groups_first_evidence(backend, tmp_path):
    """Given a runner who joined A at 10:00 and B at 11:00, when a message in A from 9:00 is
    flushed, the account was created at 9:00 and is still updated at 11:00 (B's join); when one
    in B from 8:00 follows, it was created at 8:00 and updated at 9:00, A's first evidence now."""
    from tests.stores.backends import join

    store, _ = open_backend(backend, tmp_path)
    try:
        a, b = two_groups(store)
        store.observe(a["_id"], join(TID, T + timedelta(minutes=120)))
        store.observe(b["_id"], join(TID, T + timedelta(minutes=180)))
        flush_message(store, a["_id"], TID, T + timedelta(minutes=60))
        assert account_times(store) == (T + timedelta(minutes=60), T + timedelta(minutes=180))
        flush_message(store, b["_id"], TID, T)
        assert account_times(store) == (T, T + timedelta(minutes=60))
    finally:
        close_backend(store)


def test_a_flushed_old_message_leaves_the_apps_own_account_dates_alone(tmp_path):
    """Given the app's account of a runner (a phone, created 2024-12-01 10:00 as a string) and
    their membership from then, when a message of theirs from 9:00 that day is flushed, the
    membership dates back to 9:00 but the account keeps the app's created_at and updated_at."""
    from tests.app_db import PLAIN

    store, _ = open_backend("mongomock-app", tmp_path)
    try:
        club = store.club_by_group(-1001777000)
        flush_message(store, club["_id"], PLAIN, datetime(2024, 12, 1, 9, 0))
        member = next(m for m in store.club_by_group(-1001777000)["members"] if m["telegram_id"] == PLAIN)
        assert member["joined_at"] == datetime(2024, 12, 1, 9, 0)
        raw = store.users.find_one({"telegram_id": PLAIN})
        assert (raw["created_at"], raw["updated_at"]) == ("2024-12-01T10:00:00Z", "2024-12-01T10:00:00Z")
    finally:
        close_backend(store)


def test_a_flushed_old_message_dates_back_an_account_the_app_stored_with_string_dates(tmp_path):
    """Given an account holding only Telegram fields, stored by the app with string dates and a
    double telegram_id (created and updated 2024-12-01 12:00, the membership's joined_at), when
    a message from 11:00 is flushed, the account follows in the app's own string form."""
    from tests.app_db import DOUBLE_ID

    store, _ = open_backend("mongomock-app", tmp_path)
    try:
        club = store.club_by_group(-1001777000)
        flush_message(store, club["_id"], DOUBLE_ID, datetime(2024, 12, 1, 11, 0))
        raw = store.users.find_one({"_id": "user_double"})
        assert (raw["created_at"], raw["updated_at"]) == ("2024-12-01T11:00:00Z", "2024-12-01T11:00:00Z")
    finally:
        close_backend(store)


# events of one runner in two groups at distinct minutes: a join (observed as it arrives) or a
# flush of buffered messages (the earliest message per group, one group or both in one flush)
joins_and_flushes = st.lists(st.one_of(
    st.tuples(st.just("join"), st.sampled_from([0, 1]), st.integers(0, 500)),
    st.tuples(st.just("flush"), st.sampled_from([0, 1]), st.integers(0, 500)),
    st.tuples(st.just("flush both"), st.just(2), st.integers(0, 500))), min_size=1, max_size=8,
    unique_by=lambda e: e[2])


@pytest.mark.parametrize("backend", ["sqlite-memory", "mongomock", "mongomock-app"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=joins_and_flushes)
def test_joins_and_flushed_messages_in_any_order_end_in_the_account_of_their_earliest_evidence(backend, tmp_path,
                                                                                              events):
    """Whatever order joins and flushed old messages arrive in, each membership's joined_at is
    its earliest evidence, and the account was created at the earliest of them and last updated
    at the newest. A message flushed before any join in its group is one the store never
    placed (a flush carries known members only): it is left out of the expectation."""
    from tests.stores.backends import join

    store, _ = open_backend(backend, tmp_path)
    try:
        clubs = [c["_id"] for c in two_groups(store)]
        evidence: dict = {}
        for kind, group, minute in events:
            at = T + timedelta(minutes=minute)
            if kind == "join":
                store.observe(clubs[group], join(TID, at))
                evidence.setdefault(group, []).append(at)
                continue
            groups = [g for g in ((0, 1) if group == 2 else (group,)) if g in evidence]
            if not groups:
                continue
            # both groups in one flush: the second a minute apart from the first (not a drawn time)
            times = {g: at + timedelta(seconds=30 * i) for i, g in enumerate(groups)}
            keys = {(clubs[g], TID): t for g, t in times.items()}
            store.flush_last_seen(keys, keys, keys, {k: [t] for k, t in keys.items()})
            for g, t in times.items():
                evidence[g].append(t)
        assume(evidence)  # no join: no account to look at
        joined = {g: min(ts) for g, ts in evidence.items()}
        assert account_times(store) == (min(joined.values()), max(joined.values()))
    finally:
        close_backend(store)
