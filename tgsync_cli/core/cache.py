"""Member cache: who is known to be an active member of which club, so the hot path skips the store.

The protocol is tiny so the Redis implementation (scale-out) can share it. Keys are
(club_id, telegram_id): club ids survive a group's migration, chat ids do not.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from time import monotonic
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Tuple

Key = Tuple[str, int]


class MemberCache(Protocol):
    def is_active(self, club_id: str, telegram_id: int) -> bool: ...

    def add(self, club_id: str, telegram_id: int) -> None: ...

    def evict(self, club_id: str, telegram_id: int) -> None: ...

    def warm(self, pairs: Iterable[Key]) -> None: ...

    def clear(self) -> None: ...


class MemoryMemberCache:
    """Per club, the sorted ids of its cached active members (an `array` of 8-byte integers) and
    the club's own expiry.

    Why this shape: the cache holds every active member of every club (a million and more), so
    it is kept to about 8 bytes a member, with no Python object per member and no cap past which
    it stops taking newcomers or rebuilds itself. A hit is a dict lookup, a clock read and a
    binary search. A re-warm replaces only the clubs whose roster changed in the store (the store
    says which, by club version) and extends the others' expiry, so it costs in proportion to
    what changed, not to the number of members. The TTL is a safety net: every change the
    engine makes updates the cache at once; expiry only bounds how long another process's change
    can go unseen if re-warms stop."""

    def __init__(self, ttl_seconds: float = 3600.0, clock: Callable[[], float] = monotonic):
        self._now = clock  # a simulated clock in the benchmark
        self._ttl = ttl_seconds
        self._clubs: Dict[str, list] = {}  # club id -> [array('q') of sorted ids, expiry]

    def is_active(self, club_id: str, telegram_id: int) -> bool:
        c = self._clubs.get(club_id)
        if c is None or c[1] <= self._now():
            return False
        ids = c[0]
        i = bisect_left(ids, telegram_id)
        return i < len(ids) and ids[i] == telegram_id

    is_active_local = is_active  # all in memory: the same answer, safe from another thread

    def add(self, club_id: str, telegram_id: int) -> None:
        c = self._clubs.get(club_id)
        if c is None or c[1] <= self._now():
            # what the club held has expired: only this member is known now
            self._clubs[club_id] = [array("q", (telegram_id,)), self._now() + self._ttl]
            return
        ids = c[0]
        i = bisect_left(ids, telegram_id)
        if i == len(ids) or ids[i] != telegram_id:
            ids.insert(i, telegram_id)

    def evict(self, club_id: str, telegram_id: int) -> None:
        c = self._clubs.get(club_id)
        if c is None:
            return
        ids = c[0]
        i = bisect_left(ids, telegram_id)
        if i < len(ids) and ids[i] == telegram_id:
            del ids[i]

    def warm(self, pairs: Iterable[Key]) -> None:
        """Every club named is replaced by the members named for it."""
        by_club: Dict[str, List[int]] = {}
        for club_id, tid in pairs:
            by_club.setdefault(club_id, []).append(tid)
        self.warm_clubs(by_club)

    def warm_clubs(self, changed: Mapping[str, Iterable[int]], unchanged: Iterable[str] = (),
                   removed: Iterable[str] = ()) -> None:
        """Clubs the store re-read get their active ids anew; clubs whose version did not move
        keep their ids (the engine's own changes are already in them) with a fresh expiry."""
        exp = self._now() + self._ttl
        for club_id, ids in changed.items():
            self._clubs[club_id] = [array("q", sorted(set(ids))), exp]
        for club_id in unchanged:
            c = self._clubs.get(club_id)
            if c is not None and club_id not in changed:
                c[1] = exp
        for club_id in removed:
            self._clubs.pop(club_id, None)

    def clear(self) -> None:
        self._clubs.clear()

    def __len__(self) -> int:
        now = self._now()
        return sum(len(c[0]) for c in self._clubs.values() if c[1] > now)


def cache_status(cache: MemberCache, club_id: str, telegram_id: int, status: Optional[str]) -> None:
    """What the store answered, mirrored: active members are cached, anyone else is not."""
    if status == "active":
        cache.add(club_id, telegram_id)
    else:
        cache.evict(club_id, telegram_id)
