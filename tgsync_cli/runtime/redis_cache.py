"""The member cache in Redis, shared by every `serve` and `worker` process on every machine.

Why a near-cache in front: a Redis lookup is a loopback (or LAN) round trip, 30-100 µs even on
one machine, and the hot path — a message from a known active member — promises no round trip.
So each process keeps the members it has already confirmed in a local dict (one lookup, well
under a microsecond) and Redis is only asked on a local miss.

Why that is still correct across processes: an eviction (leave, kick, a roster that no longer
lists someone) deletes the Redis key and publishes the (club, member) pair on one channel in the
same round trip; every process's listener thread drops its local copy when the message arrives
(typically well under a millisecond). Pub/sub is fire-and-forget, so a process whose subscription
drops could miss an eviction: the listener then clears the whole near-cache when it reconnects,
and every local entry also expires after `near_ttl_seconds` regardless, which bounds how long a
missed eviction can keep a departed member "active" in one process. A generation counter
closes the remaining race (a lookup reading Redis just before another process's eviction must
not re-insert the stale answer after the eviction message was processed).

Redis down (at start or mid-run) stops nothing: the cache is an optimisation. While it is down
every lookup is a miss (the store decides, so the hot path costs a store read), adds and warm-ups
are skipped, and evictions are remembered and replayed when it is back (a member who left must
not come back as "active" from a key written before the outage). The near-cache is dropped,
since evictions published by other processes cannot reach us. Redis is asked again at most every
`retry_seconds`, so an outage does not cost a connection attempt per message. One warning when
it goes, one line when it is back.

Trade-off, documented for operators: `near_ttl_seconds` (default 60) is the worst-case
staleness if pub/sub messages are lost; lower it for stricter consistency at the price of a
Redis round trip per member per interval. Only positive answers are kept locally: a miss always
asks Redis, so a member another process just added is seen at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, Iterable, Optional, Tuple

log = logging.getLogger("tgsync.cache")

Key = Tuple[str, int]
CHANNEL_SUFFIX = "evict"
WARM_CHUNK = 1000


class RedisMemberCache:
    """MemberCache protocol over Redis keys `<prefix>:<club_id>:<telegram_id>` with a TTL."""

    def __init__(self, client, ttl_seconds: float = 3600.0, *, prefix: str = "tgsync:m",
                 near_ttl_seconds: float = 60.0, near_maxsize: int = 200_000,
                 listen: bool = True, clock=time.monotonic, retry_seconds: float = 5.0):
        self.r = client
        self.ttl = max(1, int(round(ttl_seconds)))
        self.prefix = prefix
        self.channel = f"{prefix}:{CHANNEL_SUFFIX}"
        self.near_ttl = min(float(near_ttl_seconds), float(ttl_seconds))
        self.near_maxsize = near_maxsize
        self._clock = clock
        self._near: Dict[Key, float] = {}  # key -> local expiry (monotonic)
        self._gen = 0  # bumped by every invalidation this process learns of
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: Optional[threading.Thread] = None
        self._subscribed = threading.Event()
        self._listen_failed = threading.Event()
        self.retry_seconds = retry_seconds
        self._down_until: Optional[float] = None  # Redis unreachable: not asked before this
        self._down = False
        self._pending_evictions: set = set()  # made while down, replayed when Redis is back
        self._pending_clear = False
        if listen:
            self._listener = threading.Thread(target=self._listen, name="tgsync-cache-evictions",
                                              daemon=True)
            self._listener.start()
            for _ in range(50):  # up to 5 s for the subscription; Redis down: go on at once
                if self._subscribed.wait(0.1) or self._listen_failed.is_set():
                    break

    @classmethod
    def from_url(cls, url: str, ttl_seconds: float = 3600.0, **kwargs) -> "RedisMemberCache":
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0,
                                      health_check_interval=30)
        return cls(client, ttl_seconds, **kwargs)

    def is_active_local(self, club_id: str, telegram_id: int) -> bool:
        """This process's near copy only, never Redis (safe on the update loop): False when it
        does not know."""
        exp = self._near.get((club_id, telegram_id))
        return exp is not None and exp > self._clock()

    def _key(self, club_id: str, telegram_id: int) -> str:
        return f"{self.prefix}:{club_id}:{telegram_id}"

    # -- Redis up / down ---------------------------------------------------------------------------
    def _usable(self) -> bool:
        """False while Redis is known down and its retry time has not come."""
        if self._down_until is None:
            return True
        if self._clock() < self._down_until:
            return False
        return self._recover()

    def _lost(self, exc: BaseException, doing: str) -> None:
        with self._lock:
            self._near.clear()
            self._gen += 1
            first = not self._down
            self._down = True
            self._down_until = self._clock() + self.retry_seconds
        if first:
            log.warning("member cache (Redis) unavailable (%s, on %s): working against the store "
                        "until Redis answers again", type(exc).__name__, doing)

    def _recover(self) -> bool:
        """Redis answered the retry: replay what was decided while it was down."""
        try:
            self.r.ping()
            if self._pending_clear:
                self._clear_redis()
            if self._pending_evictions:
                p = self.r.pipeline(transaction=False)
                for club_id, tid in self._pending_evictions:
                    p.delete(self._key(club_id, tid))
                    p.publish(self.channel, f"{club_id}:{tid}")
                p.execute()
        except Exception as exc:
            with self._lock:
                self._down_until = self._clock() + self.retry_seconds
            log.debug("member cache still unavailable (%s)", type(exc).__name__)
            return False
        with self._lock:
            self._pending_evictions.clear()
            self._pending_clear = False
            self._down_until = None
            was_down, self._down = self._down, False
        if was_down:
            log.warning("member cache (Redis) is back")
        return True

    @property
    def available(self) -> bool:
        return self._down_until is None

    # -- protocol ------------------------------------------------------------------------------
    def is_active(self, club_id: str, telegram_id: int) -> bool:
        k = (club_id, telegram_id)
        until = self._near.get(k)
        if until is not None:
            if until > self._clock():
                return True  # hot path: one dict lookup, no round trip
            self._near.pop(k, None)
        if not self._usable():
            return False  # a miss sends the caller to the store: slower, never wrong
        gen = self._gen
        try:
            hit = bool(self.r.exists(self._key(club_id, telegram_id)))
        except Exception as exc:
            self._lost(exc, "a lookup")
            return False
        if hit:
            self._remember(k, gen)
        return hit

    def add(self, club_id: str, telegram_id: int) -> None:
        if not self._usable():
            return  # the store holds the member; the next lookup asks it
        gen = self._gen
        try:
            self.r.set(self._key(club_id, telegram_id), b"1", ex=self.ttl)
        except Exception as exc:
            self._lost(exc, "an add")
            return
        self._remember((club_id, telegram_id), gen)

    def evict(self, club_id: str, telegram_id: int) -> None:
        """Delete and announce in one round trip, so no process keeps the member as active.
        With Redis down, the eviction is kept and done when it is back."""
        k = (club_id, telegram_id)
        with self._lock:
            self._near.pop(k, None)
            self._gen += 1
        if self._usable():
            try:
                p = self.r.pipeline(transaction=False)
                p.delete(self._key(club_id, telegram_id))
                p.publish(self.channel, f"{club_id}:{telegram_id}")
                p.execute()
                return
            except Exception as exc:
                self._lost(exc, "an eviction")
        with self._lock:
            self._pending_evictions.add(k)

    def warm(self, pairs: Iterable[Key]) -> None:
        """One round trip per chunk of WARM_CHUNK keys (a pipeline, not one call per member).
        With Redis down, skipped: lookups go to the store until it is back."""
        if not self._usable():
            return
        gen = self._gen
        chunk = []
        try:
            for k in pairs:
                chunk.append(k)
                if len(chunk) >= WARM_CHUNK:
                    self._warm_chunk(chunk, gen)
                    chunk = []
            if chunk:
                self._warm_chunk(chunk, gen)
        except Exception as exc:
            self._lost(exc, "the warm-up")

    def _warm_chunk(self, chunk, gen: int) -> None:
        p = self.r.pipeline(transaction=False)
        for club_id, tid in chunk:
            p.set(self._key(club_id, tid), b"1", ex=self.ttl)
        p.execute()
        for k in chunk:
            self._remember(k, gen)

    def clear(self) -> None:
        """Drops every member key of this prefix, for every process (a full re-warm follows)."""
        with self._lock:
            self._near.clear()
            self._gen += 1
        if self._usable():
            try:
                self._clear_redis()
                return
            except Exception as exc:
                self._lost(exc, "a clear")
        with self._lock:
            self._pending_clear = True

    def _clear_redis(self) -> None:
        batch = []
        for key in self.r.scan_iter(match=f"{self.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= WARM_CHUNK:
                self.r.delete(*batch)
                batch = []
        if batch:
            self.r.delete(*batch)
        self.r.publish(self.channel, "*")

    def __len__(self) -> int:
        return len(self._near)

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(3.0)
        try:
            self.r.close()
        except Exception:
            pass

    # -- near-cache ------------------------------------------------------------------------------
    def _remember(self, k: Key, gen: int) -> None:
        with self._lock:
            if gen != self._gen:
                return  # an eviction arrived since we asked Redis: do not resurrect the entry
            if len(self._near) >= self.near_maxsize:
                for old in list(self._near)[: max(1, self.near_maxsize // 10)]:
                    self._near.pop(old, None)  # oldest insertions first
            self._near[k] = self._clock() + self.near_ttl

    def _drop(self, payload: str) -> None:
        with self._lock:
            self._gen += 1
            if payload == "*":
                self._near.clear()
                return
            club_id, _, tid = payload.rpartition(":")
            try:
                self._near.pop((club_id, int(tid)), None)
            except ValueError:
                pass

    def _listen(self) -> None:
        """Subscribe and apply evictions; after any disconnect, forget the whole near-cache."""
        backoff = 0.1
        while not self._stop.is_set():
            ps = self.r.pubsub(ignore_subscribe_messages=True)
            try:
                ps.subscribe(self.channel)
                ps.get_message(timeout=1.0)  # the subscribe confirmation
                self._drop("*")  # anything learned before (re)subscribing may be stale
                self._subscribed.set()
                backoff = 0.1
                while not self._stop.is_set():
                    msg = ps.get_message(timeout=0.5)
                    if msg and msg.get("type") == "message":
                        data = msg["data"]
                        self._drop(data.decode() if isinstance(data, bytes) else str(data))
            except Exception as exc:  # the lookups notice an outage and say so, once
                self._listen_failed.set()
                log.debug("member cache eviction listener lost Redis (%s); retrying",
                          type(exc).__name__)
                self._drop("*")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                try:
                    ps.close()
                except Exception:
                    pass
