"""Member cache: who is known to be an active member of which club, so the hot path skips the store.

The protocol is tiny so the Redis implementation (scale-out) can share it. Keys are
(club_id, telegram_id): club ids survive a group's migration, chat ids do not.
"""

from __future__ import annotations

from time import monotonic
from typing import Callable, Dict, Iterable, Optional, Protocol, Tuple

Key = Tuple[str, int]


class MemberCache(Protocol):
    def is_active(self, club_id: str, telegram_id: int) -> bool: ...

    def add(self, club_id: str, telegram_id: int) -> None: ...

    def evict(self, club_id: str, telegram_id: int) -> None: ...

    def warm(self, pairs: Iterable[Key]) -> None: ...

    def clear(self) -> None: ...


class MemoryMemberCache:
    """A dict of key → expiry. A hit is one dict lookup and a clock read; a warm-up of a whole
    store is one bulk dict update (cachetools' per-key TTL bookkeeping made a 300,000-member warm
    take about a second). The TTL is a safety net: every change the engine makes updates the
    cache at once; expiry only bounds how long another process's change can go unseen."""

    def __init__(self, ttl_seconds: float = 3600.0, maxsize: int = 1_000_000,
                 clock: Callable[[], float] = monotonic):
        self._now = clock  # a simulated clock in the benchmark
        self._ttl = ttl_seconds
        self._max = maxsize
        self._c: Dict[Key, float] = {}

    def is_active(self, club_id: str, telegram_id: int) -> bool:
        exp = self._c.get((club_id, telegram_id))
        return exp is not None and exp > self._now()

    def add(self, club_id: str, telegram_id: int) -> None:
        if len(self._c) >= self._max:
            self._drop_expired()
            if len(self._c) >= self._max:
                return  # full of live entries: this one is simply read from the store next time
        self._c[(club_id, telegram_id)] = self._now() + self._ttl

    def evict(self, club_id: str, telegram_id: int) -> None:
        self._c.pop((club_id, telegram_id), None)

    def warm(self, pairs: Iterable[Key]) -> None:
        self._c.update(dict.fromkeys(pairs, self._now() + self._ttl))
        if len(self._c) > self._max:
            self._drop_expired()

    def clear(self) -> None:
        self._c.clear()

    def _drop_expired(self) -> None:
        now = self._now()
        self._c = {k: e for k, e in self._c.items() if e > now}

    def __len__(self) -> int:
        now = self._now()
        return sum(1 for e in self._c.values() if e > now)


def cache_status(cache: MemberCache, club_id: str, telegram_id: int, status: Optional[str]) -> None:
    """What the store answered, mirrored: active members are cached, anyone else is not."""
    if status == "active":
        cache.add(club_id, telegram_id)
    else:
        cache.evict(club_id, telegram_id)
