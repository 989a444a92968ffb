"""`scripts/bench --scale`: how our store's costs grow, on the default backend (SQLite `file:`).

Per-operation time against club size (300 / 2,000 / 10,000 members): a new member, a member
leaving, a message from a known member the cache does not hold, a flush of 30 last_seen changes.
Against the number of clubs (10 / 100 / 1,000, 300 members each): a cold start (the one query
that builds the club map and warms the cache), a flush of 30 changes in every club, a re-warm
when nothing changed and when a tenth of the clubs did, and looking up a chat with no club.
The issue's targets are printed beside the figures; nothing here is asserted by tests.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from array import array
from datetime import datetime, timedelta
from typing import Callable, Dict, Iterable, List, Tuple, TypedDict, cast

from tgsync_cli.bench import writers
from tgsync_cli.bench.stats import spread
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import ChatRef, Event, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.core.store import ClubIndex, Store
from tgsync_cli.stores import new_id, open_store

T0 = datetime(2025, 3, 3)
OPS = 100  # operations timed per figure (the 300-member club bounds it)


def _club_docs(n_clubs: int, members: int, base: int = 10_000_000):
    clubs, users = [], []
    uid = base
    for c in range(n_clubs):
        ms = []
        for _ in range(members):
            uid += 1
            u = new_id("user")
            users.append({"_id": u, "telegram_id": uid, "username": None, "first_name": f"R{uid}",
                          "last_name": None, "language_code": None, "created_at": T0, "updated_at": T0})
            ms.append({"user_id": u, "telegram_id": uid, "username": None, "first_name": f"R{uid}",
                       "role": "member", "status": "active", "joined_at": T0, "last_seen": None,
                       "source": "member_import", "status_at": T0, "role_at": T0, "hard_at": T0})
        clubs.append({"_id": new_id("club"), "name": f"Club {c}", "telegram_group_id": -1002_000_000_000 - c,
                      "created_by": None, "members": ms, "sync": {"bot_is_admin": True, "bot_present": True}})
    return {"clubs": clubs, "users": users}


def _settle(store) -> None:
    """Setup is not measured: fold the bulk load into the database file before timing anything."""
    conn = getattr(store, "_conn", None)
    if conn is not None:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _timed_each(handle: Callable[[Event], None], events: Iterable[Event]) -> float:
    """Building each event is timed with its handling, as a running bot would pay for both."""
    t = time.perf_counter()
    for ev in events:
        handle(ev)
    return time.perf_counter() - t


class ClubsRow(TypedDict):
    """One line of `per_clubs`: seconds unless the name says otherwise; *_s lists are
    (min, median, max) of the rounds."""

    clubs: int
    members: int
    start_s: float
    start_query_s: float
    start_queries: int
    flush_30_per_club_s: float
    flush_steady_s: List[float]
    flush_baseline_s: List[float]
    flush_ratio_vs_baseline: List[float]
    rewarm_unchanged_s: float
    rewarm_query_s: float
    rewarm_tenth_changed_s: float
    unknown_chat_ms: float


# the timed bodies of `cache_scale`, passed their cache and clubs so each size times its own
def _rewarm_tenth(cache: MemoryMemberCache, tenth: Dict[str, array], ids: Dict[str, array]) -> None:
    cache.warm_clubs(tenth, unchanged=list(ids))


def _hits(cache: MemoryMemberCache, clubs: List[str], n_clubs: int, size: int, ops: int) -> List[bool]:
    return [cache.is_active(clubs[i % n_clubs], 10**9 + i * 7 % size) for i in range(ops)]


def _add_newcomers(cache: MemoryMemberCache, clubs: List[str], n_clubs: int, ops: int) -> None:
    for i in range(ops):
        cache.add(clubs[i % n_clubs], 5 + i)


def _rewarm_query(store: Store, e: Engine) -> ClubIndex:
    return store.club_index(e.directory.versions())


def per_member(root: str, sizes=(300, 2_000, 10_000)) -> List[Dict[str, float]]:
    rows = []
    for size in sizes:
        store = open_store(f"file:{root}/size{size}")
        docs = _club_docs(1, size)
        store.import_documents(docs)
        _settle(store)
        chat = ChatRef(docs["clubs"][0]["telegram_group_id"], "supergroup", "Club")
        e = Engine(store, OfflineGateway(9000, "bench_bot"), MemoryMemberCache(), bot_id=9000)
        e.start()
        known = [m["telegram_id"] for m in docs["clubs"][0]["members"]]
        at = [T0 + timedelta(minutes=i + 1) for i in range(OPS)]
        new = _timed_each(e.handle, (MemberStatusChanged(chat, Person(1_000 + i, first_name="N"),
                                                         MemberState("member"), at[i]) for i in range(OPS)))
        left = _timed_each(e.handle, (MemberStatusChanged(chat, Person(known[i]), MemberState("left"), at[i])
                                      for i in range(OPS)))
        e.cache.clear()
        uncached = _timed_each(e.handle, (MessageSeen(chat, Person(known[OPS + i]), at[i]) for i in range(OPS)))
        for i in range(30):
            e.handle(MessageSeen(chat, Person(known[OPS + i]), at[-1] + timedelta(minutes=i)))
        flush = _timed(e.flush)
        rows.append({"members": size, "new_member_ms": 1000 * new / OPS, "leave_ms": 1000 * left / OPS,
                     "uncached_message_ms": 1000 * uncached / OPS, "flush_30_ms": 1000 * flush})
        store.close()
    return rows


def flush_rounds(e: Engine, store, docs, rounds: int = 3, hour: int = 2):
    """The same flush (30 writers a club, later times, same week) by the current code and by the
    code it replaced (bench/flush_baseline.py), alternating; returns both lists of seconds."""
    import types

    from tgsync_cli.bench import flush_baseline

    current = store.flush_last_seen
    old = types.MethodType(flush_baseline.flush_last_seen, store)
    conn = getattr(store, "_conn", None)
    steady: List[float] = []
    base: List[float] = []
    for r in range(2 * rounds):
        for c in docs["clubs"]:
            chat = ChatRef(c["telegram_group_id"], "supergroup", c["name"])
            for m in c["members"][:30]:
                e.handle(MessageSeen(chat, Person(m["telegram_id"]), T0 + timedelta(hours=hour + r)))
        use_old = (r % 2 == 0) == (r // 2 % 2 == 0)  # old, new, new, old, old, new
        if use_old:
            store.flush_last_seen = old
            if conn is not None:  # as it was: checkpoints inside the commit
                conn.execute("PRAGMA wal_autocheckpoint = 1000")
        try:
            (base if use_old else steady).append(_timed(e.flush))
        finally:
            store.flush_last_seen = current
            if conn is not None and getattr(store, "_checkpointer", None) is not None:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
    return steady, base


def per_clubs(root: str, counts=(10, 100, 1_000), members: int = 300) -> List[ClubsRow]:
    rows: List[ClubsRow] = []
    for n in counts:
        store = open_store(f"file:{root}/clubs{n}")
        docs = _club_docs(n, members)
        store.import_documents(docs)
        _settle(store)
        store.ops = 0
        e = Engine(store, OfflineGateway(9000, "bench_bot"), MemoryMemberCache(), bot_id=9000)
        start_store = _timed(store.club_index)
        store.ops = 0
        start = _timed(e.start)
        start_ops = store.ops
        for c in docs["clubs"]:  # 30 writers per club, on the hot path
            chat = ChatRef(c["telegram_group_id"], "supergroup", c["name"])
            for m in c["members"][:30]:
                e.handle(MessageSeen(chat, Person(m["telegram_id"]), T0 + timedelta(hours=1)))
        flush = _timed(e.flush)
        steady, base = flush_rounds(e, store, docs, rounds=3)
        warm_same = _timed(e.start)
        warm_query = _timed(functools.partial(_rewarm_query, store, e))
        for c in docs["clubs"][: max(1, n // 10)]:  # a tenth of the clubs gain a member
            e.handle(MemberStatusChanged(ChatRef(c["telegram_group_id"]), Person(5, first_name="J"),
                                         MemberState("member"), T0 + timedelta(hours=2)))
        warm_tenth = _timed(e.start)
        unknown = _timed(functools.partial(store.club_by_group, -42))
        rows.append({"clubs": n, "members": n * members, "start_s": start, "start_query_s": start_store,
                     "start_queries": start_ops,
                     "flush_30_per_club_s": flush, "flush_steady_s": spread(steady),
                     "flush_baseline_s": spread(base),
                     "flush_ratio_vs_baseline": spread([n / b for n, b in zip(steady, base, strict=True)]),
                     "rewarm_unchanged_s": warm_same, "rewarm_query_s": warm_query,
                     "rewarm_tenth_changed_s": warm_tenth, "unknown_chat_ms": 1000 * unknown})
        store.close()
    return rows


def cache_scale(sizes=(100_000, 1_000_000, 2_000_000), per_club: int = 1_000) -> List[Dict[str, float]]:
    """The member cache against its size: bytes a cached member (tracemalloc, the whole cache),
    a warm of every club, a re-warm with a tenth of the clubs changed, a newcomer's add and a
    hit, each at `sizes` members in clubs of `per_club`."""
    import tracemalloc

    rows = []
    for size in sizes:
        n_clubs = size // per_club
        ids = {f"club{c}": array("q", range(10**9 + c * per_club, 10**9 + (c + 1) * per_club))
               for c in range(n_clubs)}
        cache = MemoryMemberCache()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        cache.warm_clubs(ids)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        cache = MemoryMemberCache()  # timed apart: tracemalloc slows every allocation
        warm = _timed(functools.partial(cache.warm_clubs, ids))
        tenth = {cid: v for i, (cid, v) in enumerate(ids.items()) if i % 10 == 0}
        rewarm = _timed(functools.partial(_rewarm_tenth, cache, tenth, ids))
        clubs = list(ids)
        add = _timed(functools.partial(_add_newcomers, cache, clubs, n_clubs, OPS * 10))
        hit = _timed(functools.partial(_hits, cache, clubs, n_clubs, size, OPS * 10))
        rows.append({"members": size, "clubs": n_clubs, "bytes_per_member": (after - before) / size,
                     "warm_s": warm, "rewarm_tenth_s": rewarm, "newcomer_add_us": 1e6 * add / (OPS * 10),
                     "hit_us": 1e6 * hit / (OPS * 10)})
    return rows


def main(json_out: bool = False, quick: bool = False) -> Tuple[int, Dict[str, object]]:
    root = tempfile.mkdtemp(prefix="tgsync-scale-")
    try:
        sizes = (300, 2_000) if quick else (300, 2_000, 10_000)
        counts = (10, 100) if quick else (10, 100, 1_000)
        a, b = per_member(root, sizes), per_clubs(root, counts)
        c = cache_scale((100_000, 1_000_000) if quick else (100_000, 1_000_000, 2_000_000))
        wr = writers.run(people=300, rounds=1) if quick else writers.run()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = a[-1]["new_member_ms"] / a[0]["new_member_ms"] if a[0]["new_member_ms"] else 0.0
    out = {"backend": "sqlite file:", "per_member_size": a, "per_club_count": b,
           "new_member_ratio_largest_vs_300": round(ratio, 2), "cache": c,
           "cache_bytes_per_member": round(max(r["bytes_per_member"] for r in c), 1)}
    out.update(wr)
    thousand = [r for r in b if r["clubs"] == 1_000]
    # the flush as serve makes it, every 15 minutes, the same week (median of the rounds); the
    # first flush of a week (activity rows for everyone) is "flush_30_per_club_s" beside it
    out["flush_seconds_1000_clubs"] = round(thousand[0]["flush_steady_s"][1], 3) if thousand else None
    out["flush_ratio_vs_baseline_1000_clubs"] = (round(thousand[0]["flush_ratio_vs_baseline"][1], 2)
                                                 if thousand else None)
    if json_out:
        return 0, out
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(110, Console().width))
    t = Table(title="per operation vs club size (SQLite file:, ms each)")
    for col in ("members", "new member", "leave", "uncached message", "flush of 30"):
        t.add_column(col, justify="right")
    for r in a:
        t.add_row(f"{r['members']:,}", f"{r['new_member_ms']:.3f}", f"{r['leave_ms']:.3f}",
                  f"{r['uncached_message_ms']:.3f}", f"{r['flush_30_ms']:.2f}")
    con.print(t)
    t = Table(title="start / flush / re-warm vs number of clubs (300 members each, seconds)")
    for col in ("clubs", "members", "cold start", "its query", "queries", "flush 30/club",
                "re-warm, none changed", "its query", "re-warm, 1/10 changed", "unknown chat ms"):
        t.add_column(col, justify="right")
    for row in b:
        t.add_row(f"{row['clubs']:,}", f"{row['members']:,}", f"{row['start_s']:.3f}",
                  f"{row['start_query_s']:.3f}", str(row["start_queries"]),
                  f"{row['flush_30_per_club_s']:.3f}", f"{row['rewarm_unchanged_s']:.3f}",
                  f"{row['rewarm_query_s']:.4f}", f"{row['rewarm_tenth_changed_s']:.3f}",
                  f"{row['unknown_chat_ms']:.3f}")
    con.print(t)

    t = Table(title="last_seen flush of 30 writers a club, same week: now vs the temp-table flush it "
                    "replaced, alternating (s, median (min–max) of 3 each)")
    for col in ("clubs", "first of the week", "now", "before", "now / before"):
        t.add_column(col, justify="right")
    for row in b:
        f = row["flush_steady_s"]
        o = row["flush_baseline_s"]
        q = row["flush_ratio_vs_baseline"]
        t.add_row(f"{row['clubs']:,}", f"{row['flush_30_per_club_s']:.3f}", f"{f[1]:.3f} ({f[0]:.3f}–{f[2]:.3f})",
                  f"{o[1]:.3f} ({o[0]:.3f}–{o[2]:.3f})", f"{q[1]:.2f} ({q[0]:.2f}–{q[2]:.2f})")
    con.print(t)
    one, two, q = (cast(List[float], wr[k]) for k in ("one_writer_events_per_s", "two_writers_events_per_s",
                                                          "two_writers_ratio_runs"))
    con.print(f"writers: one replay process {one[1]:,} events/s ({one[0]:,}–{one[2]:,}); two at once on "
              f"the same store {two[1]:,} ({two[0]:,}–{two[2]:,}) → {q[1]:.2f}× ({q[0]:.2f}–{q[2]:.2f}; "
              f"target ≥1.3×: {'[green]met[/]' if q[1] >= 1.3 else '[red]missed[/]'}), "
              f"{wr['writers_rounds']} alternating rounds, {wr['writers_events_per_process']:,} updates a process")
    mq = cast(List[float], wr["machine_two_process_ratio_runs"])
    con.print(f"  the machine in the same rounds: two busy processes vs one {mq[1]:.2f}× ({mq[0]:.2f}–{mq[2]:.2f}; "
              f"~2 when idle); the writers got {wr['two_writers_vs_machine']:.2f} of that")

    t = Table(title="member cache vs size (clubs of 1,000; in memory)")
    for col in ("members", "bytes/member", "warm s", "re-warm, 1/10 changed s", "newcomer add µs", "hit µs"):
        t.add_column(col, justify="right")
    for r in c:
        t.add_row(f"{r['members']:,}", f"{r['bytes_per_member']:.1f}", f"{r['warm_s']:.3f}",
                  f"{r['rewarm_tenth_s']:.3f}", f"{r['newcomer_add_us']:.2f}", f"{r['hit_us']:.2f}")
    con.print(t)

    def mark(ok: bool) -> str:
        return "[green]met[/]" if ok else "[red]missed[/]"

    big = b[-1]
    con.print(f"new member at {a[-1]['members']:,} members: {ratio:.2f}× the time at 300 "
              f"(target ≤1.5×: {mark(ratio <= 1.5)}); at {big['clubs']:,} clubs: cold start "
              f"{big['start_s']:.2f} s (target <1 s: {mark(big['start_s'] < 1)}), flush of 30 a club "
              f"{big['flush_30_per_club_s']:.2f} s (target <1 s: {mark(big['flush_30_per_club_s'] < 1)})")
    return 0, out
