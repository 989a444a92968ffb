"""Fault injection for the store: the outages at-least-once processing has to survive.

Used by the tests and by `scripts/soak`. `FaultyStore` is a `Store` that wraps another: hand it
to the engine (or pipeline, or command) in place of the store it wraps. Every protocol call
passes through it, so an injected failure happens where a real outage does: before the call
(it raises `StoreUnavailable` and is not applied), after it (the write committed, the caller
sees a failure: the case at-least-once retries must survive), or halfway through a listing's
write (a backend whose listing is one transaction applies none of it; one that writes member by
member keeps the prefix it wrote).

    faults = FaultyStore(store)
    engine = Engine(faults, gateway, cache)
    faults.fail_next(3)                 # the next 3 calls fail
    faults.fail_for(2.0)                # every call fails for 2 s (clock injectable)
    faults.fail_mid_bulk(applied=2)     # the next listing write fails after 2 of its members
    faults.fail_randomly(0.05, seed=7)  # each call fails with p = 5 %, reproducibly
    faults.lose_reply_next(1, only={"observe"})  # the write lands, its reply is lost
    faults.lose_replies_randomly(0.05, seed=7)   # the same, for 5 % of calls
    faults.injected                     # how many failures were injected, by kind
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Set

from tgsync_cli.core.errors import StoreUnavailable
from tgsync_cli.core.evidence import Observation, Outcome
from tgsync_cli.core.store import Store

# The protocol's calls that reach the database: each passes the fault checks (`close` does not).
STORE_CALLS: FrozenSet[str] = frozenset(
    name for part in Store.__mro__ if part.__module__ == Store.__module__  # and its part protocols
    for name, value in vars(part).items()
    if callable(value) and not name.startswith("_") and name != "close")


class _Schedule:
    """When a fault is due: at given call numbers, on the next n calls (of some methods only),
    or at random. The same for a failure before a call and a reply lost after it."""

    def __init__(self, at: str, next_: str, randomly: str) -> None:
        self.kinds = (at, next_, randomly)
        self.clear()

    def clear(self) -> None:
        self.at: Set[int] = set()
        self.next = 0
        self.only: Optional[Set[str]] = None
        self.p = 0.0
        self.rng = random.Random(0)

    def due(self, call: int, name: str) -> Optional[str]:
        if call in self.at:
            self.at.discard(call)
            return self.kinds[0]
        if self.next > 0 and (self.only is None or name in self.only):
            self.next -= 1
            return self.kinds[1]
        return None

    def due_randomly(self) -> Optional[str]:
        return self.kinds[2] if self.p and self.rng.random() < self.p else None


class FaultyStore:
    """A `Store` wrapping `store`: every protocol call may be made to fail, before or after it
    reaches the wrapped store. Anything else (`ops`, `uri_label`, backend attributes) is the
    wrapped store's."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.calls = 0
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._before = _Schedule("at", "next", "random")
        self._after = _Schedule("reply_lost_at", "reply_lost", "reply_lost_random")
        self._until: Optional[float] = None
        self._bulk_prefix: Optional[int] = None

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.store, name)
        if name not in STORE_CALLS:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._before_call(name)
            result = value(*args, **kwargs)
            self._after_call(name)
            return result
        return call

    def close(self) -> None:
        self.store.close()

    def observe_many(self, club_id: str, observations: Sequence[Observation],
                     complete_at: Optional[datetime] = None, complete_source: str = "member_import"
                     ) -> List[Outcome]:
        self._before_call("observe_many")
        with self._lock:
            applied, self._bulk_prefix = self._bulk_prefix, None
            if applied is not None:
                self.injected["mid_bulk"] += 1
        if applied is not None:
            if not getattr(self.store, "atomic_listings", False):
                self.store.observe_many(club_id, list(observations)[:applied])  # the prefix lands
            raise StoreUnavailable(f"injected failure after {applied} parts of observe_many")
        result = self.store.observe_many(club_id, observations, complete_at, complete_source)
        self._after_call("observe_many")
        return result

    # -- modes --------------------------------------------------------------------------------
    def fail_next(self, n: int, only: Optional[Set[str]] = None) -> "FaultyStore":
        """The next `n` calls (of the named methods only, if given) fail."""
        self._before.next, self._before.only = n, set(only) if only else None
        return self

    def fail_at(self, *numbers: int) -> "FaultyStore":
        """The calls with these 1-based numbers, counted from now, fail (exhaustive single faults)."""
        self._before.at = {self.calls + n for n in numbers}
        return self

    def fail_for(self, seconds: float) -> "FaultyStore":
        """Every call fails until `seconds` have passed on `clock`."""
        self._until = self.clock() + seconds
        return self

    def fail_randomly(self, p: float, seed: int = 0) -> "FaultyStore":
        """Each call fails with probability `p`; a seed makes the run reproducible."""
        self._before.p, self._before.rng = p, random.Random(seed)
        return self

    def fail_mid_bulk(self, applied: int) -> "FaultyStore":
        """The next listing write fails after its first `applied` members (a backend whose
        listing is one transaction, SQLite, applies none of it)."""
        self._bulk_prefix = applied
        return self

    def lose_reply_next(self, n: int, only: Optional[Set[str]] = None) -> "FaultyStore":
        """The next `n` calls (of the named methods only, if given) reach the database and are
        applied, then fail as if the reply was lost on the way back."""
        self._after.next, self._after.only = n, set(only) if only else None
        return self

    def lose_reply_at(self, *numbers: int) -> "FaultyStore":
        """The calls with these 1-based numbers, counted from now, are applied, then fail."""
        self._after.at = {self.calls + n for n in numbers}
        return self

    def lose_replies_randomly(self, p: float, seed: int = 0) -> "FaultyStore":
        """Each call is applied, then fails with probability `p` (seeded)."""
        self._after.p, self._after.rng = p, random.Random(seed)
        return self

    def heal(self) -> "FaultyStore":
        self._until, self._bulk_prefix = None, None
        self._before.clear()
        self._after.clear()
        return self

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    # -- the checks every call passes ---------------------------------------------------------------
    def _before_call(self, name: str) -> None:
        with self._lock:
            self.calls += 1
            kind = self._before.due(self.calls, name)
            if kind is None and self._until is not None:
                if self.clock() < self._until:
                    kind = "outage"
                else:
                    self._until = None
            elif kind is None:
                kind = self._before.due_randomly()
            if kind is None:
                return
            self.injected[kind] += 1
        raise StoreUnavailable(f"injected {kind} failure in {name}")

    def _after_call(self, name: str) -> None:
        with self._lock:
            kind = self._after.due(self.calls, name) or self._after.due_randomly()
            if kind is None:
                return
            self.injected[kind] += 1
        raise StoreUnavailable(f"injected {kind} after {name} reached the store")


def snapshot(store) -> dict:
    """Everything a user could notice in the store, minus generated ids: for before/after and
    faulty/fault-free comparisons. Members are kept in stored order, so a duplicate shows."""
    def member(m):
        return {k: v for k, v in m.items() if k != "user_id"}

    docs = store.export()
    clubs, gid = [], {}
    for doc in docs["clubs"]:
        gid[doc["_id"]] = doc["telegram_group_id"]
        clubs.append({"telegram_group_id": doc["telegram_group_id"], "name": doc.get("name"),
                      "previous_group_ids": sorted(doc.get("previous_group_ids") or []),
                      "sync": {k: v for k, v in (doc.get("sync") or {}).items() if k != "last_sync"},
                      "members": sorted((member(m) for m in doc.get("members", [])),
                                        key=lambda m: m["telegram_id"])})
    users = sorted(({k: v for k, v in u.items() if k != "_id"} for u in docs["users"]),
                   key=lambda u: u["telegram_id"])
    # A tombstone only matters while its person has no membership (the engine never reads it
    # otherwise), so one left behind by a retry that created the member is not a difference.
    members = {(c["telegram_group_id"], m["telegram_id"]) for c in clubs for m in c["members"]}
    deps = sorted(({**{k: v for k, v in d.items() if k != "_id"}, "club_id": gid.get(d["club_id"])}
                   for d in docs["departures"]
                   if (gid.get(d["club_id"]), d["telegram_id"]) not in members),
                  key=lambda d: (str(d["club_id"]), d["telegram_id"]))
    return {"clubs": sorted(clubs, key=lambda c: c["telegram_group_id"]), "users": users,
            "departures": deps}


def duplicates(store) -> dict:
    """Members listed twice in a club, and accounts held twice by one Telegram user."""
    docs = store.export()
    dup_members = 0
    for doc in docs["clubs"]:
        ids = [m["telegram_id"] for m in doc.get("members", [])]
        dup_members += len(ids) - len(set(ids))
    tids = [u["telegram_id"] for u in docs["users"]]
    return {"members": dup_members, "accounts": len(tids) - len(set(tids))}


# -- soak: many updates through the pipeline with the store failing -----------------------------
class SoakTelegram:
    """Answers the engine's few Telegram questions during a soak (no network): the creator is
    the admin, everyone asking is a member, posts go nowhere."""

    def __init__(self, bot_id: int):
        from tgsync_cli.core.gateway import BotIdentity

        self._me = BotIdentity(bot_id, "soak_bot")
        self.posts: list = []  # chat ids the bot posted into (the welcome)

    def me(self):
        return self._me

    def chat_info(self, chat_id):
        from tgsync_cli.core.gateway import ChatInfo

        return ChatInfo(chat_id, "supergroup")  # no migrations in a soak

    def get_admins(self, chat_id):
        from tgsync_cli.core.events import MemberState, Person
        from tgsync_cli.core.gateway import ChatMemberInfo

        return [ChatMemberInfo(Person(1, first_name="Owner"), MemberState("creator"))]

    def get_member(self, chat_id, user_id):
        from tgsync_cli.core.events import MemberState, Person
        from tgsync_cli.core.gateway import ChatMemberInfo

        return ChatMemberInfo(Person(user_id), MemberState("member"))

    def iter_member_pages(self, chat_id):
        from tgsync_cli.core.errors import AdminRequired

        raise AdminRequired("not listed in a soak")

    def member_count(self, chat_id):
        return 0

    def send_group_message(self, chat_id, text, button_text=None, button_url=None):
        self.posts.append(chat_id)

    def send_private(self, user_id, text, button_text=None, button_url=None):
        return True

    def _no_requests(self, *args):
        from tgsync_cli.core.errors import AdminRequired

        raise AdminRequired("no join requests or removals in a soak")

    approve_join_request = decline_join_request = _no_requests
    ban_member = unban_member = _no_requests


def soak_updates(n: int, seed: int = 1, clubs: int = 40, people: int = 60):
    """`n` Bot API Update dicts of busy clubs: mostly messages, joins, leaves, kicks,
    promotions, restrictions and deep links; about 2 % delivered twice and 1 % late."""
    rng = random.Random(seed)
    bot = {"id": 9000, "is_bot": True, "first_name": "Soak", "username": "soak_bot"}
    chats = [{"id": -1009000000 - i, "type": "supergroup", "title": f"Club {i}"} for i in range(clubs)]
    t = 1_740_000_000
    out: List[Dict[str, Any]] = []
    for c in chats:
        t += 1
        out.append({"my_chat_member": {"chat": c, "from": _soak_user(1), "date": t,
                                       "old_chat_member": {"user": bot, "status": "left"},
                                       "new_chat_member": {"user": bot, "status": "administrator"}}})
    statuses = ["member"] * 5 + ["left"] * 3 + ["kicked", "administrator", "restricted"]
    while len(out) < n:
        t += 1
        r = rng.random()
        c, uid = rng.choice(chats), rng.randint(2, people + 1)
        if r < 0.02 and len(out) > clubs:
            out.append(json.loads(json.dumps(out[rng.randrange(clubs, len(out))])))  # a duplicate
            continue
        date = t - rng.randint(1, 600) if r < 0.03 else t  # some arrive late
        if r < 0.80:
            out.append({"message": {"message_id": len(out), "chat": c, "from": _soak_user(uid),
                                    "date": date, "text": "km today"}})
        elif r < 0.82:
            out.append({"message": {"message_id": len(out), "date": date, "from": _soak_user(uid),
                                    "chat": {"id": uid, "type": "private"},
                                    "text": f"/start join_{c['id']}"}})
        else:
            new = rng.choice(statuses)
            member: Dict[str, Any] = {"user": _soak_user(uid), "status": new}
            if new == "restricted":
                member["is_member"] = rng.random() < 0.5
            out.append({"chat_member": {"chat": c, "from": _soak_user(uid), "date": date,
                                        "old_chat_member": {"user": _soak_user(uid), "status": "member"},
                                        "new_chat_member": member}})
    for i, u in enumerate(out):
        u["update_id"] = i + 1
    return out[:n]


def _soak_user(uid: int) -> dict:
    return {"id": uid, "is_bot": False, "first_name": f"Runner {uid}", "username": f"runner{uid}"}


def run_soak(n: int, fault_rate: float, seed: int = 1, store_uri: str = "memory:",
             after_rate: float = 0.0) -> dict:
    """Push `n` updates through the Pipeline into an engine whose store fails `fault_rate` of its
    calls before they reach it and `after_rate` of them after the write reached it (the reply is
    lost), seeded. Returns the figures and the final store snapshot."""
    from tgsync_cli.core.cache import MemoryMemberCache
    from tgsync_cli.core.engine import Engine
    from tgsync_cli.runtime.pipeline import Pipeline
    from tgsync_cli.sources.botapi import parse_update
    from tgsync_cli.stores import open_store

    store = open_store(store_uri)
    faults = FaultyStore(store)
    telegram = SoakTelegram(9000)
    engine = Engine(faults, telegram, MemoryMemberCache(), bot_id=9000)
    engine.start()
    faults.fail_randomly(fault_rate, seed=seed)
    faults.lose_replies_randomly(after_rate, seed=seed + 1)
    pipe = Pipeline(engine, max_pending=1000, backoff=(0.0, 0.0), sleep=lambda s: None)
    quiet = logging.getLogger("tgsync")
    level, quiet.level = quiet.level, logging.CRITICAL  # 5 % of calls failing is the point here
    pipe.start()
    events = 0
    started = time.monotonic()
    for update in soak_updates(n, seed=seed):
        for ev in parse_update(update):
            pipe.submit(ev)
            events += 1
    spooled = pipe.stop(timeout=3600)
    quiet.setLevel(level)
    elapsed = time.monotonic() - started
    faults.heal()
    final = snapshot(store)
    stats = pipe.stats()
    return {"updates": n, "events": events, "faults_injected": faults.total_injected,
            "store_calls": faults.calls, "retries": stats["retries"], "applied": stats["applied"],
            "refused": stats["failed"], "spooled": spooled,
            "lost": events - stats["applied"] - spooled,
            "duplicates": duplicates(store), "seconds": round(elapsed, 1),
            "members": sum(len(c["members"]) for c in final["clubs"]),
            "accounts": len(final["users"]), "snapshot": final, "failed": list(pipe.failed),
            "welcomes": len(telegram.posts), "welcome_chats": len(set(telegram.posts)),
            "faults_by_kind": dict(faults.injected)}
