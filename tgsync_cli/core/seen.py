"""The seen-buffer: message times held in memory between two flushes.

A message from a known active member costs no store call; what it proves is noted here and
written by the next flush in one round trip. Per (club, member) three times are kept:
- `last`: the newest message (the member's `last_seen`, and a late leave must not undo it);
- `first`: the earliest message (evidence for `source`/`joined_at`);
- `since`: the earliest message since a message last made the member active (what `status_at` is
  for a member active by messages alone);
- `times`: the earliest few distinct message times, so that the store can tell which came after a
  member event this process does not know of (another process applied it, or it arrives later).
This is the only place those times live. The pipeline, the spool and the Celery path read,
merge and drop them through this interface; nothing else holds them.
"""

from __future__ import annotations

import bisect

from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, Iterable, List, Optional, Set, Tuple

from tgsync_cli.core.evidence import KEEP_SEEN_TIMES

Key = Tuple[str, int]  # (club id, telegram id)
Times = Dict[Key, datetime]


@dataclass
class SeenBatch:
    """What one flush takes out of the buffer (and gives back if the store refused it)."""

    last: Times = field(default_factory=dict)
    first: Times = field(default_factory=dict)
    since: Times = field(default_factory=dict)
    times: Dict[Key, List[datetime]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.last or self.first)


@dataclass(frozen=True)
class SeenTimes:
    """One member's buffered times: newest, earliest, earliest since active."""

    last: datetime
    first: Optional[datetime] = None
    since: Optional[datetime] = None


def _keep_newest(values: Times, key: Key, at: datetime) -> None:
    prev = values.get(key)
    if prev is None or at > prev:
        values[key] = at


def _keep_earliest(values: Times, key: Key, at: datetime) -> None:
    prev = values.get(key)
    if prev is None or at < prev:
        values[key] = at


def _keep_few(values: Dict[Key, List[datetime]], key: Key, at: datetime) -> None:
    """The earliest KEEP_SEEN_TIMES distinct times: a short sorted list, so the hot path stays cheap."""
    held = values.get(key)
    if held is None:
        values[key] = [at]
    elif at not in held and (len(held) < KEEP_SEEN_TIMES or at < held[-1]):
        bisect.insort(held, at)
        del held[KEEP_SEEN_TIMES:]


class SeenBuffer:
    def __init__(self) -> None:
        self._last: Times = {}
        self._first: Times = {}
        self._since: Times = {}
        self._times: Dict[Key, List[datetime]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def is_empty(self) -> bool:
        return not self._last and not self._first

    def note(self, key: Key, at: datetime) -> None:
        """A message at `at`: newest stays newest, earliest earliest."""
        _keep_newest(self._last, key, at)
        _keep_earliest(self._first, key, at)
        _keep_earliest(self._since, key, at)
        _keep_few(self._times, key, at)

    def note_active_since(self, key: Key, at: datetime, made_active: bool) -> None:
        """A message the store just applied: if it made the member active, later messages count
        from it; otherwise it is evidence of activity only if it is the earliest one held."""
        since = self._since.get(key)
        if made_active or since is None or at < since:
            self._since[key] = at

    def newest(self, key: Key) -> Optional[datetime]:
        """The newest unflushed message of this member, if any."""
        return self._last.get(key)

    def people(self) -> Set[int]:
        return {tid for _, tid in self._last}

    def times(self, keys: Optional[Iterable[Key]] = None) -> Dict[Key, SeenTimes]:
        """A copy of what is held (of `keys` only, when given): for checkpoints and the spool."""
        wanted = self._last if keys is None else {k: self._last[k] for k in keys if k in self._last}
        return {k: SeenTimes(at, self._first.get(k), self._since.get(k)) for k, at in wanted.items()}

    def drain(self) -> SeenBatch:
        """Everything held, handed to a flush; the buffer starts empty."""
        batch = SeenBatch(self._last, self._first, self._since, self._times)
        self._last, self._first, self._since, self._times = {}, {}, {}, {}
        return batch

    def restore(self, batch: SeenBatch) -> None:
        """A flush the store refused: its times come back (nothing accepted is lost), merged with
        what arrived meanwhile."""
        for key, at in batch.since.items():
            _keep_earliest(self._since, key, at)
        for key, times in batch.times.items():
            for at in times:
                _keep_few(self._times, key, at)
        for key, at in list(batch.last.items()) + list(batch.first.items()):
            self.note(key, at)

    def merge(self, key: Key, at: datetime, first: Optional[datetime] = None,
              since: Optional[datetime] = None) -> None:
        """Times read back from the spool."""
        _keep_newest(self._last, key, at)
        if first is not None:
            _keep_earliest(self._first, key, first)
        if since is not None:
            _keep_earliest(self._since, key, since)
        for t in (at, first, since):  # the spool keeps these three; they stand for the rest
            if t is not None:
                _keep_few(self._times, key, t)

    def drop_person(self, telegram_id: int) -> None:
        """`forget`: nothing of this person stays buffered, in any club."""
        for values in (self._last, self._first, self._since, self._times):
            for key in [k for k in values if k[1] == telegram_id]:
                del values[key]
