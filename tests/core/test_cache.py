"""The in-process member cache: per club a sorted set of ids with the club's own expiry.

Stories: a newcomer among millions of cached members costs the store what it costs among a
hundred and rebuilds nothing; a re-warm re-reads only the clubs whose roster changed; a club
expires as a whole, and a re-warm keeps an unchanged club alive; any sequence of adds and
evictions answers like a plain set would.
"""

from __future__ import annotations

from array import array
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.stores import open_store

T = datetime(2025, 3, 3, 9, 0)


def clubs_world(n_clubs: int, members: int = 3):
    """A memory store with n clubs (chat -1000..), each with a few active members."""
    store = open_store("memory:")
    clubs, users = [], []
    for c in range(n_clubs):
        ms = []
        for i in range(members):
            tid = 10_000 * (c + 1) + i
            users.append({"_id": f"u{tid}", "telegram_id": tid, "first_name": "R"})
            ms.append({"user_id": f"u{tid}", "telegram_id": tid, "role": "member", "status": "active"})
        clubs.append({"_id": f"club{c}", "name": f"Club {c}", "telegram_group_id": -1000 - c,
                      "members": ms, "sync": {"bot_is_admin": True, "bot_present": True}})
    store.import_documents({"clubs": clubs, "users": users})
    return store


def test_a_newcomer_among_two_million_cached_members_costs_one_round_trip_and_rebuilds_nothing():
    store = clubs_world(200)
    cache = MemoryMemberCache()
    engine = Engine(store, OfflineGateway(9000), cache, bot_id=9000)
    engine.start()
    # the cache as a big deployment holds it: 200 clubs × 10,000 members
    cache.warm_clubs({f"club{c}": array("q", range(10**9 + c * 10**6, 10**9 + c * 10**6 + 10_000))
                      for c in range(200)})
    assert len(cache) == 2_000_000
    held = {cid: c[0] for cid, c in cache._clubs.items()}
    store.ops = 0
    newcomer = Person(77, first_name="New")
    engine.handle(MessageSeen(ChatRef(-1005, "supergroup", "Club 5"), newcomer, T))
    assert store.ops <= 2
    assert cache.is_active("club5", 77) and len(cache) == 2_000_001
    assert all(cache._clubs[cid][0] is ids for cid, ids in held.items())  # nothing rebuilt
    store.ops = 0
    engine.handle(MessageSeen(ChatRef(-1005, "supergroup", "Club 5"), newcomer, T.replace(minute=5)))
    assert store.ops == 0  # their next message is on the hot path


def test_a_rewarm_rereads_only_the_clubs_whose_roster_changed():
    store = clubs_world(5)
    cache = MemoryMemberCache()
    engine = Engine(store, OfflineGateway(9000), cache, bot_id=9000)
    engine.start()
    held = {cid: c[0] for cid, c in cache._clubs.items()}
    engine.handle(MemberStatusChanged(ChatRef(-1002, "supergroup"), Person(30_001),
                                      MemberState("left"), T))
    engine.start()
    assert not cache.is_active("club2", 30_001)
    for cid, ids in held.items():
        assert (cache._clubs[cid][0] is ids) == (cid != "club2")
    assert cache.is_active("club3", 40_000)


def test_a_club_expires_as_a_whole_and_a_rewarm_keeps_an_unchanged_club_alive():
    now = [0.0]
    cache = MemoryMemberCache(ttl_seconds=100, clock=lambda: now[0])
    cache.warm_clubs({"a": [1, 2, 3], "b": [4]})
    now[0] = 60
    cache.warm_clubs({"b": [5]}, unchanged=["a", "b"])
    now[0] = 130  # past a's first expiry, within the re-warm's
    assert cache.is_active("a", 2) and cache.is_active("b", 5) and not cache.is_active("b", 4)
    now[0] = 161
    assert not cache.is_active("a", 2) and len(cache) == 0
    cache.add("a", 9)  # what the club held expired: only the newly proven member is known
    assert cache.is_active("a", 9) and not cache.is_active("a", 1)


def test_a_club_the_store_no_longer_has_is_dropped():
    cache = MemoryMemberCache()
    cache.warm_clubs({"a": [1], "b": [2]})
    cache.warm_clubs({}, unchanged=["a"], removed=["b"])
    assert cache.is_active("a", 1) and not cache.is_active("b", 2)


ops = st.lists(st.tuples(st.sampled_from(["add", "evict", "warm"]), st.sampled_from(["a", "b"]),
                         st.lists(st.integers(1, 40), max_size=6)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_any_sequence_of_changes_answers_like_a_set(steps):
    cache, model = MemoryMemberCache(), {"a": set(), "b": set()}
    for op, club, ids in steps:
        if op == "warm":
            cache.warm_clubs({club: ids})
            model[club] = set(ids)
        for tid in ids if op != "warm" else ():
            getattr(cache, op)(club, tid)
            (model[club].add if op == "add" else model[club].discard)(tid)
        for c in model:
            assert [t for t in range(41) if cache.is_active(c, t)] == sorted(model[c])
    assert len(cache) == len(model["a"]) + len(model["b"])
