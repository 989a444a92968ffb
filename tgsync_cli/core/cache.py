"""Member cache: who is known to be an active member of which club, so the hot path skips the store.

The protocol is tiny so the Redis implementation (scale-out) can share it. Keys are
(club_id, telegram_id): club ids survive a group's migration, chat ids do not.
"""

from __future__ import annotations

from typing import Iterable, Protocol, Tuple

from cachetools import TTLCache

Key = Tuple[str, int]


class MemberCache(Protocol):
    def is_active(self, club_id: str, telegram_id: int) -> bool: ...

    def add(self, club_id: str, telegram_id: int) -> None: ...

    def evict(self, club_id: str, telegram_id: int) -> None: ...

    def warm(self, pairs: Iterable[Key]) -> None: ...

    def clear(self) -> None: ...


class MemoryMemberCache:
    """cachetools TTL cache; a hit is one dict lookup."""

    def __init__(self, ttl_seconds: float = 3600.0, maxsize: int = 1_000_000):
        self._c: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl_seconds)

    def is_active(self, club_id: str, telegram_id: int) -> bool:
        return (club_id, telegram_id) in self._c

    def add(self, club_id: str, telegram_id: int) -> None:
        self._c[(club_id, telegram_id)] = True

    def evict(self, club_id: str, telegram_id: int) -> None:
        self._c.pop((club_id, telegram_id), None)

    def warm(self, pairs: Iterable[Key]) -> None:
        for k in pairs:
            self._c[k] = True

    def clear(self) -> None:
        self._c.clear()

    def __len__(self) -> int:
        return len(self._c)
