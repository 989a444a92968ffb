"""The times a user sees are functions of the events, not of the order they arrive in: status_at,
last_seen and the account's created_at, updated_at and names, for one process given any
permutation and for two engines sharing one store, each taking part of a shuffled stream."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import BotStatusChanged, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.stores import open_store
from tests.core.test_convergence import CHAT, STATUSES, T0

_names = itertools.count()


def person(uid, minute):
    return Person(uid, first_name=f"u{uid}")


def event(kind, uid, minute, is_member=True):
    at = T0 + timedelta(minutes=minute)
    if kind == "message":
        return MessageSeen(CHAT, person(uid, minute), at)
    return MemberStatusChanged(CHAT, person(uid, minute), MemberState(kind, is_member), at)


stream = st.lists(st.tuples(st.sampled_from(STATUSES + ["message"] * 3), st.integers(1, 4), st.booleans()),
                  min_size=1, max_size=12).map(
    lambda xs: [event(k, u, i + 1, b) for i, (k, u, b) in enumerate(xs)])


def engine_on(uri):
    e = Engine(open_store(uri), OfflineGateway(), MemoryMemberCache(), bot_id=9000)
    e.start()
    return e


def with_club(uri):
    e = engine_on(uri)
    e.handle(BotStatusChanged(CHAT, None, MemberState("left"), MemberState("member"), T0,
                              Person(9000, True, "bot", username="b")))
    return e


def seen_by_user(store):
    doc = store.club_by_group(CHAT.id)
    members = {m["telegram_id"]: (m["status"], m["role"], m["source"], m["joined_at"], m["status_at"],
                                  m["last_seen"])
               for m in doc["members"]}
    accounts = {tid: (u["created_at"], u["updated_at"]) for tid in members
                for u in [store.user_by_telegram_id(tid)] if u is not None}
    return members, accounts


def run_one(events):
    uri = f"memory:order-{next(_names)}"
    e = with_club(uri)
    for ev in events:
        e.handle(ev)
    e.flush()
    return seen_by_user(e.store)


@settings(max_examples=150, deadline=None)
@given(events=stream, data=st.data())
def test_one_process_any_order_same_times(events, data):
    assert run_one(data.draw(st.permutations(events))) == run_one(events)


@settings(max_examples=100, deadline=None)
@given(events=stream, data=st.data())
def test_two_engines_on_one_store_same_times(events, data):
    """Two engines (own caches and seen-buffers) in one interpreter, for breadth; real processes:
    tests/stores/test_order_free_processes.py."""
    uri = f"memory:order-{next(_names)}"
    first = with_club(uri)
    second = engine_on(uri)  # its own cache and seen-buffer, the same store
    shuffled = data.draw(st.permutations(events))
    sides = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    for ev, side in zip(shuffled, sides):
        (first if side else second).handle(ev)
    first.flush()
    second.flush()
    assert seen_by_user(first.store) == run_one(events)


# one or two people writing often, so that the times kept with a member fill up across flushes
busy_stream = st.lists(st.tuples(st.sampled_from(STATUSES + ["message"] * 8), st.integers(1, 2), st.booleans()),
                       min_size=1, max_size=16).map(
    lambda xs: [event(k, u, i + 1, b) for i, (k, u, b) in enumerate(xs)])


@settings(max_examples=150, deadline=None)
@given(events=busy_stream, data=st.data())
def test_flushing_at_any_moment_changes_no_time(events, data):
    """serve flushes on a timer: whichever messages a flush happens to carry, and whatever the
    store already keeps of a member's earlier ones, the roster ends the same."""
    e = with_club(f"memory:order-{next(_names)}")
    shuffled = data.draw(st.permutations(events))
    flush_after = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    for ev, flush in zip(shuffled, flush_after, strict=True):
        e.handle(ev)
        if flush:
            e.flush()
    e.flush()
    assert seen_by_user(e.store) == run_one(events)
