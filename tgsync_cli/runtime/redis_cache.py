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

from tgsync_cli.core.errors import StoreUnavailable

log = logging.getLogger("tgsync.cache")

Key = Tuple[str, int]
CHANNEL_SUFFIX = "evict"
WARM_CHUNK = 1000


class RedisMemberCache:
    """MemberCache protocol over Redis keys `<prefix>:<club_id>:<telegram_id>` with a TTL."""

    def __init__(self, client, ttl_seconds: float = 3600.0, *, prefix: str = "tgsync:m",
                 near_ttl_seconds: float = 60.0, near_maxsize: int = 200_000,
                 listen: bool = True, clock=time.monotonic):
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
        if listen:
            self._listener = threading.Thread(target=self._listen, name="tgsync-cache-evictions",
                                              daemon=True)
            self._listener.start()
            self._subscribed.wait(5.0)

    @classmethod
    def from_url(cls, url: str, ttl_seconds: float = 3600.0, **kwargs) -> "RedisMemberCache":
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0,
                                      health_check_interval=30)
        return cls(client, ttl_seconds, **kwargs)

    def _key(self, club_id: str, telegram_id: int) -> str:
        return f"{self.prefix}:{club_id}:{telegram_id}"

    # -- protocol ------------------------------------------------------------------------------
    def is_active(self, club_id: str, telegram_id: int) -> bool:
        k = (club_id, telegram_id)
        until = self._near.get(k)
        if until is not None:
            if until > self._clock():
                return True  # hot path: one dict lookup, no round trip
            self._near.pop(k, None)
        gen = self._gen
        try:
            hit = bool(self.r.exists(self._key(club_id, telegram_id)))
        except Exception as exc:  # Redis down: a miss sends the caller to the store, never wrong
            log.warning("member cache unavailable (%s); asking the store", type(exc).__name__)
            return False
        if hit:
            self._remember(k, gen)
        return hit

    def add(self, club_id: str, telegram_id: int) -> None:
        gen = self._gen
        try:
            self.r.set(self._key(club_id, telegram_id), b"1", ex=self.ttl)
        except Exception as exc:  # not fatal: the next lookup asks the store again
            log.warning("member cache add failed (%s)", type(exc).__name__)
            return
        self._remember((club_id, telegram_id), gen)

    def evict(self, club_id: str, telegram_id: int) -> None:
        """Delete and announce in one round trip, so no process keeps the member as active."""
        k = (club_id, telegram_id)
        with self._lock:
            self._near.pop(k, None)
            self._gen += 1
        try:
            p = self.r.pipeline(transaction=False)
            p.delete(self._key(club_id, telegram_id))
            p.publish(self.channel, f"{club_id}:{telegram_id}")
            p.execute()
        except Exception as exc:
            # the store already holds the change; retrying the event (it is idempotent) redoes this
            raise StoreUnavailable(f"member cache eviction failed: {type(exc).__name__}") from exc

    def warm(self, pairs: Iterable[Key]) -> None:
        """One round trip per chunk of WARM_CHUNK keys (a pipeline, not one call per member)."""
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
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"member cache warm-up failed: {type(exc).__name__}") from exc

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
        try:
            batch = []
            for key in self.r.scan_iter(match=f"{self.prefix}:*", count=1000):
                batch.append(key)
                if len(batch) >= WARM_CHUNK:
                    self.r.delete(*batch)
                    batch = []
            if batch:
                self.r.delete(*batch)
            self.r.publish(self.channel, "*")
        except Exception as exc:
            raise StoreUnavailable(f"member cache clear failed: {type(exc).__name__}") from exc

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
            except Exception as exc:
                log.warning("member cache eviction listener lost Redis (%s); retrying",
                            type(exc).__name__)
                self._drop("*")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                try:
                    ps.close()
                except Exception:
                    pass
