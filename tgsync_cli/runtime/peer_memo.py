"""Skip pyrogram's session writes of peers it already holds unchanged.

pyrogram stores every user and chat an update mentions (id, access hash, type, phone, and the
usernames) in its session database, for every update: a message in a group costs four SQLite
statements there before any handler runs, the same rows written again each time the same
runner writes. Only this process writes its session, so what it wrote last is what the session
holds: a peer seen unchanged since is not written again. A change (a new username, a new access
hash) is written as before. The memory is bounded by starting over (a restart costs rewrites,
never a missed change).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple

LIMIT = 100_000  # peers remembered before starting over (~15 MB)


class PeerMemo:
    def __init__(self, storage: Any, limit: int = LIMIT) -> None:
        self._peers: Dict[int, tuple] = {}
        self._names: Dict[int, Tuple[Any, ...]] = {}
        self._limit = limit
        self.skipped = 0
        real_peers, real_names = storage.update_peers, storage.update_usernames

        async def update_peers(peers: Iterable[tuple]) -> None:
            fresh = [p for p in peers if self._peers.get(p[0]) != p]
            self.skipped += not fresh
            if fresh:
                await real_peers(fresh)
                self._remember(self._peers, {p[0]: p for p in fresh})

        async def update_usernames(usernames: Iterable[Tuple[int, List[Any]]]) -> None:
            fresh = [(i, names) for i, names in usernames if self._names.get(i) != tuple(names)]
            if fresh:
                await real_names(fresh)
                self._remember(self._names, {i: tuple(names) for i, names in fresh})

        storage.update_peers = update_peers
        storage.update_usernames = update_usernames

    def _remember(self, memo: Dict[int, Any], rows: Dict[int, Any]) -> None:
        if len(memo) + len(rows) > self._limit:
            memo.clear()
        memo.update(rows)


def install(client: Any) -> PeerMemo | None:
    """On the client's session storage; None where it has no such writes to skip."""
    storage = getattr(client, "storage", None)
    if storage is None or not all(hasattr(storage, n) for n in ("update_peers", "update_usernames")):
        return None
    return PeerMemo(storage)
