"""The two sides the bench compares, runnable a slice at a time so they can be interleaved (ABAB):
our Engine as `serve` runs it, and the seed's route-4 handler on the seed's documents."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional

from cachetools import TTLCache

from tgsync_cli.bench.wire import WireMeter
from tgsync_cli.bench.workload import BOT_ID, RESTART, Workload, populate, starting_documents
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.stores import new_id, open_store

class SeedDB:
    """The seed's document store for side B: the seed's documents in process (mongomock), or on a
    real server when the bench is given one (`--mongodb-uri`). Every call is a round trip; on the
    emulator its own time is left out and pymongo's codec cost charged instead (bench/wire.py).
    The seed's algorithm is document-shaped (find_one on the club, `$push` into its members), so
    it runs on documents, not on our tables."""

    def __init__(self, docs: Dict[str, list], client=None, database: str = "seed"):
        import copy

        self.real = client is not None
        if client is None:
            import mongomock

            client = mongomock.MongoClient()
        self._client, self._dbname = client, database
        db = client[database]
        self.meter = WireMeter()
        self._clubs, self._users = db["clubs"], db["users"]
        if self.real:
            self._clubs.drop()
            self._users.drop()
        self._clubs.create_index("telegram_group_id", unique=True)
        self._users.create_index("telegram_id", unique=True)
        self._clubs.insert_many(copy.deepcopy(docs["clubs"]))
        self._users.insert_many(copy.deepcopy(docs["users"]))
        self.clubs, self.users = _Counting(self._clubs, self), _Counting(self._users, self)

    @property
    def ops(self) -> int:
        return self.meter.ops

    def drop(self) -> None:
        if self.real:
            self._client.drop_database(self._dbname)


class _Counting:
    def __init__(self, coll, owner: SeedDB):
        self._coll, self._owner = coll, owner

    def __getattr__(self, name):
        attr = getattr(self._coll, name)
        owner = self._owner

        def call(*a, **kw):
            # on a real server the call's own time is the truth; on the emulator it is replaced
            return owner.meter.call(self._coll.name, name, attr, a, kw, model=not owner.real)
        return call


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sim_cache(clock: SimClock, ttl: float) -> MemoryMemberCache:
    """Our in-process cache, its TTL running on simulated time."""
    return MemoryMemberCache(ttl_seconds=ttl, clock=clock)


# -- side A: our engine ---------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    db_ops: int
    events: int
    seconds: float
    lat_ns: List[int]
    flushes: int = 0
    flush_seconds: float = 0.0  # last_seen bulk writes: work the seed never does
    # the client's own CPU, store emulator left out and pymongo's codec charged (seed side);
    # for our side everything it spent, the embedded store's work and the flushes included
    cpu_seconds: float = 0.0
    codec_seconds: float = 0.0
    lat_ops: List[int] = field(default_factory=list)  # round trips each timed message made
    wall_measured: bool = False  # True on a real server: `seconds` is then wall time, not modelled

    def modelled_pct(self, q: float, latency_ms: float) -> float:
        """Percentile of a known member's message in µs: its CPU plus its round trips × latency."""
        if not self.lat_ns:
            return 0.0
        ops = self.lat_ops or [0] * len(self.lat_ns)
        s = sorted(n / 1000.0 + k * latency_ms * 1000.0 for n, k in zip(self.lat_ns, ops, strict=True))
        return s[min(len(s) - 1, int(q * len(s)))]

    @property
    def throughput(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.lat_ns:
            return 0.0
        s = sorted(self.lat_ns)
        return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


# -- side B: the seed's route-4 handler -------------------------------------------------------------
class SeedRoute4:
    """The seed's message handler, re-implemented: caches (TTL 1 h) or none, find_one club,
    find_one member, create in background."""

    def __init__(self, store: "SeedDB", clock: SimClock, cached: bool = True, ttl: float = 3600.0):
        self.db = store
        self.cached = cached
        self.clock = clock
        self.ttl = ttl
        self.reset()

    def reset(self) -> None:
        """A restart: the in-process caches are gone."""
        self.clubs_cache: TTLCache = TTLCache(maxsize=10_000, ttl=self.ttl, timer=self.clock)
        self.members_cache: TTLCache = TTLCache(maxsize=100_000, ttl=self.ttl, timer=self.clock)
        self.background: List[tuple] = []

    def handle(self, ev) -> None:
        if type(ev) is not MessageSeen:
            return  # route 4 only
        self.on_message(ev)
        while self.background:  # the event loop runs the created tasks right after
            club, user, at = self.background.pop()
            self.create_member(club, user, at)

    def on_message(self, ev: MessageSeen) -> None:
        user = ev.sender
        if ev.chat.type == "private" or user is None or user.is_bot:
            return
        chat_id = ev.chat.id
        key = f"{chat_id}:{user.id}"
        if self.cached and key in self.members_cache:  # the seed looks here first
            return
        club = self.clubs_cache.get(chat_id) if self.cached else None
        if club is None:
            club = self.db.clubs.find_one({"telegram_group_id": chat_id}, {"_id": 1, "name": 1})
            if club is None:
                return
            if self.cached:
                self.clubs_cache[chat_id] = club
        found = self.db.clubs.find_one({"_id": club["_id"], "members.telegram_id": user.id}, {"_id": 1})
        if found is None:
            self.background.append((club, user, ev.at))  # asyncio.create_task(create_member(...))
        if self.cached:
            self.members_cache[key] = True

    def create_member(self, club: dict, user: Person, at: datetime) -> None:
        account = self.db.users.find_one({"telegram_id": user.id}, {"_id": 1})
        if account is None:
            account = {"_id": new_id("user"), "telegram_id": user.id, "username": user.username,
                       "first_name": user.first_name, "last_name": user.last_name,
                       "language_code": user.language_code, "created_at": at, "updated_at": at}
            self.db.users.insert_one(account)
        self.db.clubs.update_one({"_id": club["_id"]}, {"$push": {"members": {
            "user_id": account["_id"], "telegram_id": user.id, "username": user.username,
            "first_name": user.first_name, "role": "member", "status": "active", "joined_at": at,
            "last_seen": None, "source": "message_activity"}}})


# -- runnable sides -------------------------------------------------------------------------------
class OursSide:
    """Our Engine on the embedded store, on Pipeline's schedule replayed in simulated time: before
    each event a re-warm once `rewarm_seconds` passed, then a last_seen flush once `flush_seconds`
    passed; a restart flushes (graceful stop) and boots a new engine. Everything is timed and
    counted in the headline: events, re-warms, flushes, restarts. `path="serve"` also times the
    adapter: each event arrives as Bot API JSON text, is parsed (`sources.botapi`) and applied
    through Pipeline's own apply-with-retry, as `serve`'s worker does."""

    def __init__(self, w: Workload, root: str, name: str = "ours", ttl: float = 3600.0,
                 flush_seconds: float = 900.0, rewarm_seconds: Optional[float] = 1800.0,
                 path: str = "engine", docs=None, backend: str = "file", mongo_client=None,
                 database: str = "bench"):
        self.name, self.w, self.path = name, w, path
        self.real = mongo_client is not None  # a server: its wall time is measured, not modelled
        self._drop = None
        if backend == "mongodb":  # the seed's documents: round trips as a server sees them
            from tgsync_cli.stores.mongo import open_mongo

            if mongo_client is None:
                import mongomock

                self.store = open_mongo("mongodb://mongomock", database, client=mongomock.MongoClient())
            else:  # a database of the bench's own, dropped at the end
                mongo_client.drop_database(database)
                self.store = open_mongo("mongodb://bench", database, client=mongo_client)
                self._drop = lambda: mongo_client.drop_database(database)
        else:
            self.store = open_store(f"file:{root}/{name.replace(' ', '_').replace(',', '')}")
        populate(self.store, w, docs)
        self.clock = SimClock()
        self.ttl, self.flush_seconds, self.rewarm_seconds = ttl, flush_seconds, rewarm_seconds
        self.gw = OfflineGateway(BOT_ID, "aydarun_bot")
        self.res = Result(name, 0, 0, 0.0, [])
        self.spent = self.flush_ns = 0
        self.warm_ns, self.warms = 0, 0
        t = time.perf_counter_ns()
        self.engine = self._boot()
        self.spent += time.perf_counter_ns() - t
        self.next_flush = flush_seconds
        self.next_warm = rewarm_seconds or float("inf")
        self.pipe = None
        if path == "serve":
            from tgsync_cli.runtime.pipeline import Pipeline

            self.pipe = Pipeline(self.engine, sleep=lambda s: None)

    def _boot(self) -> Engine:
        e = Engine(self.store, self.gw, sim_cache(self.clock, self.ttl), bot_id=BOT_ID,
                   bot_username="aydarun_bot")
        e.start()
        return e

    def feed(self, batch) -> None:
        pc = time.perf_counter_ns
        for sec, ev, raw in batch:
            self.clock.now = float(sec)
            if sec >= self.next_warm:
                t = pc()
                self.engine.start()  # one query; unchanged clubs are not re-read
                d = pc() - t
                self.spent += d
                self.warm_ns += d
                self.warms += 1
                self.next_warm = sec + self.rewarm_seconds
            if sec >= self.next_flush:
                t = pc()
                self.res.flushes += bool(self.engine.flush())
                self.flush_ns += pc() - t
                self.next_flush = sec + self.flush_seconds
            if ev is RESTART:
                t = pc()
                self.res.flushes += bool(self.engine.flush())
                self.flush_ns += pc() - t
                t = pc()
                self.engine = self._boot()
                if self.pipe is not None:
                    self.pipe.engine = self.engine
                self.spent += pc() - t
                self.next_flush = sec + self.flush_seconds
                self.next_warm = sec + self.rewarm_seconds if self.rewarm_seconds else float("inf")
                continue
            ops = self.store.ops
            t = pc()
            if self.pipe is not None:
                from tgsync_cli.sources.botapi import parse_update

                for e in parse_update(json.loads(raw)):
                    self.pipe._with_retry(functools.partial(self.engine.handle, e), type(e).__name__)
            else:
                self.engine.handle(ev)
            d = pc() - t
            self.spent += d
            self.res.events += 1
            if type(ev) is MessageSeen:
                self.res.lat_ns.append(d)
                self.res.lat_ops.append(self.store.ops - ops)

    def finish(self) -> Result:
        t = time.perf_counter_ns()
        self.res.flushes += bool(self.engine.flush())
        self.flush_ns += time.perf_counter_ns() - t
        self.res.db_ops = self.store.ops
        self.res.seconds = self.spent / 1e9
        self.res.flush_seconds = self.flush_ns / 1e9
        self.res.cpu_seconds = 0.0 if self.real else self.res.seconds + self.res.flush_seconds
        self.res.wall_measured = self.real
        self.res.store = self.store  # type: ignore[attr-defined]
        return self.res

    def drop(self) -> None:
        if self._drop is not None:
            self._drop()


class SeedSide:
    """The seed's route-4 handler on the seed's documents (see SeedRoute4)."""

    def __init__(self, w: Workload, cached: bool, name: str, docs=None, client=None,
                 database: str = "seed"):
        self.name = name
        self.store = SeedDB(docs or starting_documents(w), client, database)
        self.clock = SimClock()
        self.seed = SeedRoute4(self.store, self.clock, cached=cached)
        self.known = {ch.id: {p.id for p in w.initial[ch.id]} for ch in w.clubs}
        self.res = Result(name, 0, 0, 0.0, [])
        self.spent = 0

    def feed(self, batch) -> None:
        pc = time.perf_counter_ns
        for sec, ev, _raw in batch:
            self.clock.now = float(sec)
            if ev is RESTART:
                self.seed.reset()
                continue
            is_msg = type(ev) is MessageSeen
            was_known = is_msg and ev.sender.id in self.known[ev.chat.id]
            m = self.store.meter
            ops, excluded, codec = m.ops, m.excluded_ns, m.codec_ns
            t = pc()
            self.seed.handle(ev)
            d = pc() - t
            if not self.store.real:  # the emulator's time out, the client's codec in
                d += (m.codec_ns - codec) - (m.excluded_ns - excluded)
            self.spent += d
            self.res.events += 1
            if was_known:
                self.res.lat_ns.append(d)
                self.res.lat_ops.append(m.ops - ops)
            if is_msg:
                self.known[ev.chat.id].add(ev.sender.id)

    def finish(self) -> Result:
        self.res.db_ops = self.store.ops
        self.res.seconds = self.spent / 1e9
        self.res.cpu_seconds = 0.0 if self.store.real else self.res.seconds
        self.res.codec_seconds = self.store.meter.codec_ns / 1e9
        self.res.wall_measured = self.store.real
        self.store.drop()
        return self.res


def interleave(sides, events, chunk: int = 1000) -> List[Result]:
    """ABAB: every side runs the same slice before the next slice starts, and the order rotates
    each slice, so a change in the machine's load hits every side alike."""
    for n, i in enumerate(range(0, len(events), chunk)):
        batch = events[i:i + chunk]
        k = n % len(sides)
        for side in sides[k:] + sides[:k]:
            side.feed(batch)
    return [s.finish() for s in sides]


def bot_api_json(ev) -> Optional[str]:
    """The Bot API Update Telegram would deliver for a workload event (for --path serve)."""
    from tgsync_cli.core.events import MemberStatusChanged

    def user(p: Optional[Person]) -> dict:
        assert p is not None, "every workload event has a person"
        return {"id": p.id, "is_bot": p.is_bot, "first_name": p.first_name or "x", "username": p.username}

    if ev is RESTART:
        return None
    chat = {"id": ev.chat.id, "type": ev.chat.type, "title": ev.chat.title}
    date = int(ev.at.replace(tzinfo=timezone.utc).timestamp())
    if type(ev) is MessageSeen:
        return json.dumps({"update_id": 1, "message": {"message_id": 1, "date": date, "chat": chat,
                                                       "from": user(ev.sender), "text": "km today"}})
    if type(ev) is MemberStatusChanged:
        return json.dumps({"update_id": 1, "chat_member": {
            "chat": chat, "from": user(ev.user), "date": date,
            "old_chat_member": {"user": user(ev.user), "status": (ev.old.status if ev.old else "left")},
            "new_chat_member": {"user": user(ev.user), "status": ev.new.status}}})
    raise TypeError(type(ev).__name__)
