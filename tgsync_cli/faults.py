"""Fault injection for the store: the outages at-least-once processing has to survive.

Used by the tests and by `scripts/soak`. It plugs into `Store.before_call` (every call that
would reach the database passes through it), so an injected failure happens where a real
MongoDB outage does: the call raises `StoreUnavailable` and is not applied. A mid-bulk failure
is the nastier case — a bulk write that applied a prefix of its operations and then failed —
and is injected inside the embedded engines' bulk loop, which applies operations one by one.

    faults = FaultyStore(store)
    faults.fail_next(3)                 # the next 3 calls fail
    faults.fail_for(2.0)                # every call fails for 2 s (clock injectable)
    faults.fail_mid_bulk(applied=2)     # the next bulk write applies 2 ops, then fails
    faults.fail_randomly(0.05, seed=7)  # each call fails with p = 5 %, reproducibly
    faults.injected                     # how many failures were injected, by kind
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Callable, Optional

from tgsync_cli.errors import StoreUnavailable


class FaultyStore:
    """Wraps a `Store` in place (the same object keeps being used by the engine)."""

    def __init__(self, store, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.clock = clock
        self.calls = 0
        self.injected: Counter = Counter()
        self._lock = threading.Lock()
        self._next = 0
        self._until: Optional[float] = None
        self._p = 0.0
        self._rng = random.Random(0)
        self._only: Optional[set] = None
        self._bulk_prefix: Optional[int] = None
        self._at: set = set()
        self._bulk_coll: Optional[str] = None
        store.before_call = self._before_call
        if store.embedded:
            for coll in (store.clubs, store.users, store.departures):
                coll._embedded_bulk = self._bulk_for(coll)

    # -- modes --------------------------------------------------------------------------------
    def fail_next(self, n: int, only: Optional[set] = None) -> "FaultyStore":
        """The next `n` calls (of the named methods only, if given) fail."""
        self._next, self._only = n, set(only) if only else None
        return self

    def fail_at(self, *numbers: int) -> "FaultyStore":
        """The calls with these 1-based numbers, counted from now, fail (exhaustive single faults)."""
        self._at = {self.calls + n for n in numbers}
        return self

    def fail_for(self, seconds: float) -> "FaultyStore":
        """Every call fails until `seconds` have passed on `clock`."""
        self._until = self.clock() + seconds
        return self

    def fail_randomly(self, p: float, seed: int = 0) -> "FaultyStore":
        """Each call fails with probability `p`; a seed makes the run reproducible."""
        self._p, self._rng = p, random.Random(seed)
        return self

    def fail_mid_bulk(self, applied: int, collection: Optional[str] = None) -> "FaultyStore":
        """The next bulk write (to `collection`, if named) applies its first `applied` operations,
        then fails."""
        self._bulk_prefix, self._bulk_coll = applied, collection
        return self

    def heal(self) -> "FaultyStore":
        self._next, self._until, self._p, self._bulk_prefix, self._only = 0, None, 0.0, None, None
        self._at = set()
        return self

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    # -- hooks ----------------------------------------------------------------------------------
    def _before_call(self, name: str) -> None:
        with self._lock:
            self.calls += 1
            kind = None
            if self.calls in self._at:
                self._at.discard(self.calls)
                kind = "at"
            elif self._next > 0 and (self._only is None or name in self._only):
                self._next -= 1
                kind = "next"
            elif self._until is not None:
                if self.clock() < self._until:
                    kind = "outage"
                else:
                    self._until = None
            elif self._p and self._rng.random() < self._p:
                kind = "random"
            if kind is None:
                return
            self.injected[kind] += 1
        raise StoreUnavailable(f"injected {kind} failure in {name}")

    def _bulk_for(self, coll):
        def bulk(ops, ordered: bool = True):
            ops = list(ops)
            with self._lock:
                prefix = None
                if self._bulk_coll in (None, coll._coll.name):
                    prefix, self._bulk_prefix = self._bulk_prefix, None
            for i, op in enumerate(ops):
                if prefix is not None and i == prefix:
                    with self._lock:
                        self.injected["mid_bulk"] += 1
                    raise StoreUnavailable(f"injected failure after {prefix} of {len(ops)} bulk operations")
                coll._coll.update_one(op._filter, op._doc, upsert=op._upsert)
        return bulk


def snapshot(store) -> dict:
    """Everything a user could notice in the store, minus generated ids: for before/after and
    faulty/fault-free comparisons. Members are kept in stored order, so a duplicate shows."""
    def member(m):
        return {k: v for k, v in m.items() if k != "user_id"}

    clubs, gid = [], {}
    for doc in store.clubs._coll.find({}):
        gid[doc["_id"]] = doc["telegram_group_id"]
        clubs.append({"telegram_group_id": doc["telegram_group_id"], "name": doc.get("name"),
                      "previous_group_ids": sorted(doc.get("previous_group_ids") or []),
                      "sync": {k: v for k, v in (doc.get("sync") or {}).items() if k != "last_sync"},
                      "members": sorted((member(m) for m in doc.get("members", [])),
                                        key=lambda m: m["telegram_id"])})
    users = sorted(({k: v for k, v in u.items() if k != "_id"} for u in store.users._coll.find({})),
                   key=lambda u: u["telegram_id"])
    # A tombstone only matters while its person has no membership (the engine never reads it
    # otherwise), so one left behind by a retry that created the member is not a difference.
    members = {(c["telegram_group_id"], m["telegram_id"]) for c in clubs for m in c["members"]}
    deps = sorted(({**{k: v for k, v in d.items() if k != "_id"}, "club_id": gid.get(d["club_id"])}
                   for d in store.departures._coll.find({})
                   if (gid.get(d["club_id"]), d["telegram_id"]) not in members),
                  key=lambda d: (str(d["club_id"]), d["telegram_id"]))
    return {"clubs": sorted(clubs, key=lambda c: c["telegram_group_id"]), "users": users,
            "departures": deps}


def duplicates(store) -> dict:
    """Members listed twice in a club, and accounts held twice by one Telegram user."""
    dup_members = 0
    for doc in store.clubs._coll.find({}):
        ids = [m["telegram_id"] for m in doc.get("members", [])]
        dup_members += len(ids) - len(set(ids))
    tids = [u["telegram_id"] for u in store.users._coll.find({})]
    return {"members": dup_members, "accounts": len(tids) - len(set(tids))}
