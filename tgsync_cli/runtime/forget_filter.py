"""`forget` heard by a one-shot writer (`replay`), as a running serve hears it.

`forget` in another process leaves a note in the store (a salted hash of the id). A replay that
keeps applying a file would bring the person back: every second (and every 1,000 events) it
reads new notes, matches them against the people it applied since the last look and those still
ahead of it, drops what it buffers for them (last_seen), erases again what it applied for them
in between, and from then on applies their events without them (an event where they only
took part keeps its subject). An event newer than the erasure is new contact and is applied."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Dict, List, Optional, Set, Tuple

from tgsync_cli.core.store import forgotten_key
from tgsync_cli.runtime.forget_watch import people_of, without_person

POLL_SECONDS = 1.0
POLL_EVENTS = 1000


class ForgetFilter:
    def __init__(self, engine: Any):
        self.engine = engine
        self._since = getattr(getattr(engine, "store", None), "forgotten_since", None)
        self._mark: Optional[datetime] = None
        self._notes: List[Tuple[str, str, datetime]] = []
        self._until: Dict[int, Optional[datetime]] = {}  # id → erased at (None: checked, not erased)
        self._recent: Set[int] = set()
        self._events = 0
        self._next = time.monotonic() + POLL_SECONDS
        self.erased_again = 0
        if self._since is not None:
            self.poll()

    def poll(self) -> None:
        if self._since is None:
            return
        notes = self._since(self._mark)
        self._next, self._events = time.monotonic() + POLL_SECONDS, 0
        if not notes:
            self._recent.clear()
            return
        self._mark = max(at for _, _, at in notes)
        self._notes += notes
        self._until = {tid: at for tid, at in self._until.items() if at is not None}  # re-check the rest
        held = self._recent | set(self.engine.seen.people())
        for tid in held:
            at = self._erased_at(tid)
            if at is None:
                continue
            self.engine.seen.drop_person(tid)
            if tid in self._recent:  # applied here since the last look, maybe after the erasure
                self.engine.store.forget(tid)
                self.erased_again += 1
        self._recent.clear()

    def flushing(self, people: Set[int]) -> None:
        """These people's buffered times are about to reach the store: a `forget` landing after
        the last look but before that write is undone by the next look, as for applied events."""
        self._recent |= people

    def _erased_at(self, tid: int) -> Optional[datetime]:
        if tid not in self._until:
            self._until[tid] = next((at for salt, key, at in self._notes
                                     if forgotten_key(salt, tid) == key), None)
        return self._until[tid]

    def keep(self, event: Any) -> Any:
        """The event as it may be applied now (None: it is about an erased person)."""
        self._events += 1
        if self._events >= POLL_EVENTS or time.monotonic() >= self._next:
            self.poll()
        if not self._notes:
            return event
        inviter = getattr(event, "invited_by", None)
        for tid in people_of(event) | ({inviter} if isinstance(inviter, int) else set()):
            at = self._erased_at(tid)
            when = getattr(event, "at", None)
            if at is not None and (when is None or when <= at):
                event = without_person(event, tid)
                if event is None:
                    return None
        return event

    def applied(self, event: Any) -> None:
        self._recent |= people_of(event)
