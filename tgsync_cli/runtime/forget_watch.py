"""What a running pipeline does about `forget` run in another process.

`forget` cannot reach this process's memory, so it leaves a note in the store (a salted hash of
the id and the time, never the id: `forgotten_key`) and every pipeline polls for
notes. A note is matched against the people this process holds (queued, replayed, parked, in
last_seen) or applied since the last poll. Then what it holds for that person is dropped, its
spool is scrubbed, and what it applied for them from before the erasure is erased again (retried
at every poll until the store takes it). An event newer than the erasure is new contact and is
applied.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Set, Tuple

from tgsync_cli.core.engine import Engine
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.core.store import forgotten_key
from tgsync_cli.runtime.spool import SeenNote

log = logging.getLogger("tgsync.pipeline")
NOTE_HORIZON = timedelta(hours=1)  # the store keeps notes this long


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def people_of(event: Any) -> Set[int]:
    """The person ids an event carries (to drop a forgotten person's events)."""
    ids: Set[int] = set()
    for attr in ("user", "sender", "actor", "bot"):
        p = getattr(event, attr, None)
        if p is not None and getattr(p, "id", None) is not None:
            ids.add(p.id)
    for e in getattr(event, "entries", None) or ():
        ids.add(e.person.id)
    return ids


class HeldWork(Protocol):
    """What the pipeline holds besides its queue (replayed and parked events), as the forget
    watch needs it: to read whom it names, and to drop a forgotten person's events."""

    def held(self) -> Iterable[Any]: ...
    def discard(self, keep: Callable[[Any], Any]) -> None: ...
    def scrub_spool(self, telegram_id: int) -> None: ...
    def count_retry(self) -> None: ...


class ForgetWatch:
    """Held by a Pipeline: given its engine and the pipeline's held work."""

    def __init__(self, engine: Engine, work: HeldWork) -> None:
        self.engine = engine
        self.work = work
        self._forgotten: Dict[int, datetime] = {}  # telegram id -> when `forget` erased them
        self._notes: List[Tuple[str, str, datetime]] = []  # recent erasures (no ids in the store)
        self._mark: Optional[datetime] = None
        self._recent: Dict[int, datetime] = {}  # people applied since the last poll: newest time
        self._erase_pending: Set[int] = set()  # forgotten people to erase again (store failed)
        self._erased_here: Set[int] = set()  # forgotten people this process erased again

    def poll(self) -> None:
        """Notes name the person by a salted hash only: the ids this process holds or applied
        since the last poll are matched against each new note."""
        try:
            notes = self.engine.store.forgotten_since(self._mark)
        except TgsyncError:
            self.work.count_retry()  # a store failure met; asked again at the next poll
            return
        horizon = _utcnow() - NOTE_HORIZON
        self._notes = [n for n in self._notes if n[2] >= horizon]
        recent, self._recent = self._recent, {}
        self._erase_again()
        for salt, key, at in notes:
            self._mark = max(self._mark or at, at)
            self._notes.append((salt, key, at))
            held = set(recent) | self.engine.seen.people()
            for item in self.work.held():
                held |= people_of(item)
            for tid in held:
                if forgotten_key(salt, tid) == key:
                    self._forgotten[tid] = at
                    # applied here since the last poll, from before the erasure: undo it
                    self._drop_person(tid, erase_again=tid in recent and recent[tid] <= at)

    def note_applied(self, item: Any) -> None:
        at = getattr(item, "at", None)
        sender = getattr(item, "sender", None)  # the hot path's only person: cheap
        for tid in ((sender.id,) if sender is not None and type(item).__name__ == "MessageSeen"
                    else people_of(item)):
            prev = self._recent.get(tid)
            if at is not None and (prev is None or at > prev):
                self._recent[tid] = at

    def flushing(self) -> None:
        """The buffered message times are about to reach the store. A forget landing after the
        last poll but before that write would get the person's activity back: the next poll
        treats them as applied here, and erases them again."""
        for (_, tid), held in self.engine.seen.times().items():
            prev = self._recent.get(tid)
            if prev is None or held.last > prev:
                self._recent[tid] = held.last

    def _drop_person(self, tid: int, erase_again: bool) -> None:
        self.engine.seen.drop_person(tid)
        for info in self.engine.clubs():
            try:
                self.engine.cache.evict(info.club_id, tid)
            except TgsyncError:
                pass
        self.work.discard(self.without_forgotten)
        self.work.scrub_spool(tid)
        if erase_again:
            # an event for them applied between the forget and this poll would have re-created
            # them: erase again, retried at every poll until the store took it
            self._erase_pending.add(tid)
        self._erase_again()
        log.info("a forgotten person's pending events were dropped")

    def _erase_again(self) -> None:
        for tid in sorted(self._erase_pending):
            try:
                self.engine.store.forget(tid)
                self._erase_pending.discard(tid)
            except TgsyncError as exc:
                self.work.count_retry()
                log.warning("erasing a forgotten person again failed, retried at the next poll: %s", exc)
                return

    def is_forgotten(self, item: Any) -> bool:
        """Whether an event is about an erased person (its subject) and not newer than the
        erasure; one they only took part in is kept (see `without_forgotten`)."""
        return self.without_forgotten(item) is None

    def without_forgotten(self, item: Any) -> Any:
        """The event as it may still be applied: None when it is about an erased person (and
        not newer than the erasure: a new message after it is new contact), else the event
        with an erased actor or inviter emptied. A kick by an admin who was forgotten still
        happened: the kicked member must not stay active because of who kicked them."""
        if not self._notes or isinstance(item, SeenNote):
            return item
        inviter = getattr(item, "invited_by", None)
        for tid in people_of(item) | ({inviter} if isinstance(inviter, int) else set()):
            if self._forgotten_at(tid, getattr(item, "at", None)):
                item = without_person(item, tid)
                if item is None:
                    return None
        return item

    def _forgotten_at(self, tid: int, at: Any) -> bool:
        """Whether `tid` was erased at or after `at` (by a note this process has heard of)."""
        until = self._forgotten.get(tid)
        if until is None:
            for salt, key, noted in self._notes:
                if forgotten_key(salt, tid) == key:
                    until = self._forgotten[tid] = noted
                    break
        if until is not None and (at is None or at <= until):
            if tid not in self._erased_here:
                # another process (one killed before it polled, say) may have applied their
                # events after the erasure: erase once more from here, at the next poll
                self._erased_here.add(tid)
                self._erase_pending.add(tid)
            return True
        return False


def without_person(event: Any, tid: int) -> Any:
    """`event` with one person erased: None when they are its subject (the member whose status
    changed, the writer, who pressed the button), else their role in it (actor, inviter, an
    entry of a listing) emptied."""
    subject = getattr(event, "user", None) or getattr(event, "sender", None)
    if subject is not None and getattr(subject, "id", None) == tid:
        return None
    changes: Dict[str, Any] = {}
    actor = getattr(event, "actor", None)
    if actor is not None and actor.id == tid:
        changes["actor"] = None
    if getattr(event, "invited_by", None) == tid:
        changes.update(invited_by=None, invite_link=None)
    entries = getattr(event, "entries", None)
    if entries and any(e.person.id == tid for e in entries):
        changes["entries"] = tuple(e for e in entries if e.person.id != tid)
    if not changes:
        return None if tid in people_of(event) else event
    return dataclasses.replace(event, **changes)
