"""What a running pipeline does about `forget` run in another process (issue 12.2).

`forget` cannot reach this process's memory, so it leaves a note in the store (a salted hash of
the id and the time, never the id: core/store.py `forgotten_key`) and every pipeline polls for
notes. A note is matched against the people this process holds (queued, replayed, parked, in
last_seen) or applied since the last poll. Then what it holds for that person is dropped, its
spool is scrubbed, and what it applied for them from before the erasure is erased again (retried
at every poll until the store takes it). An event newer than the erasure is new contact and is
applied.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Set

from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.core.store import forgotten_key
from tgsync_cli.runtime.spool import SeenNote, erase_person, scrub

log = logging.getLogger("tgsync.pipeline")
NOTE_HORIZON = timedelta(hours=1)  # the store keeps notes this long


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def people_of(event: Any) -> Set[int]:
    """The person ids an event carries (to drop a forgotten person's events)."""
    ids = set()
    for attr in ("user", "sender", "actor", "bot"):
        p = getattr(event, attr, None)
        if p is not None and getattr(p, "id", None) is not None:
            ids.add(p.id)
    for e in getattr(event, "entries", None) or ():
        ids.add(e.person.id)
    return ids


class ForgetWatch:
    """Part of Pipeline: relies on its engine, replay, parked list, spool and retries."""

    def _init_forget_watch(self) -> None:
        self._forgotten: Dict[int, datetime] = {}  # telegram id -> when `forget` erased them
        self._notes: List[tuple] = []  # (salt, key, at) of recent erasures (no ids in the store)
        self._forget_mark: Optional[datetime] = None
        self._started_at = _utcnow()
        self._recent: Dict[int, datetime] = {}  # people applied since the last poll: newest time
        self._erase_pending: Set[int] = set()  # forgotten people to erase again (store failed)
        self._erased_here: Set[int] = set()  # forgotten people this process erased again

    def _poll_forgotten(self) -> None:
        """Notes name the person by a salted hash only: the ids this process holds or applied
        since the last poll are matched against each new note."""
        since = getattr(getattr(self.engine, "store", None), "forgotten_since", None)
        if since is None:
            return
        try:
            notes = since(self._forget_mark)
        except TgsyncError:
            self.retries += 1  # a store failure met; asked again at the next poll
            return
        horizon = _utcnow() - NOTE_HORIZON
        self._notes = [n for n in self._notes if n[2] >= horizon]
        recent, self._recent = self._recent, {}
        self._erase_again()
        for salt, key, at in notes:
            self._forget_mark = max(self._forget_mark or at, at)
            self._notes.append((salt, key, at))
            held = set(recent) | {k[1] for k in self.engine.last_seen}
            for item in list(self._replay) + self._parked:
                held |= people_of(item)
            for tid in held:
                if forgotten_key(salt, tid) == key:
                    self._forgotten[tid] = at
                    # applied here since the last poll, from before the erasure: undo it
                    self._drop_person(tid, erase_again=tid in recent and recent[tid] <= at)

    def _note_applied(self, item: Any) -> None:
        at = getattr(item, "at", None)
        sender = getattr(item, "sender", None)  # the hot path's only person: cheap
        for tid in ((sender.id,) if sender is not None and type(item).__name__ == "MessageSeen"
                    else people_of(item)):
            prev = self._recent.get(tid)
            if at is not None and (prev is None or at > prev):
                self._recent[tid] = at

    def _drop_person(self, tid: int, erase_again: bool) -> None:
        for buffered in (self.engine.last_seen, self.engine.first_seen, self.engine.active_since):
            for key in [k for k in buffered if k[1] == tid]:
                del buffered[key]
        for info in self.engine.clubs():
            try:
                self.engine.cache.evict(info.club_id, tid)
            except TgsyncError:
                pass
        self._replay = collections.deque(kept for kept in map(self._without_forgotten, self._replay)
                                         if kept is not None)
        self._parked = [kept for kept in map(self._without_forgotten, self._parked) if kept is not None]
        if self._spool is not None:
            with self._spool_lock:  # the journal writes under this lock: nothing slips between
                journal = getattr(self, "_journal", None)
                if journal is not None:
                    journal.without(lambda doc: erase_person(doc, tid))
                scrub(self._spool.path, tid)
        if erase_again and hasattr(self.engine.store, "forget"):
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
                self.retries += 1
                log.warning("erasing a forgotten person again failed, retried at the next poll: %s", exc)
                return

    def _is_forgotten(self, item: Any) -> bool:
        """Whether an event is about an erased person (its subject) and not newer than the
        erasure; one they only took part in is kept (see `_without_forgotten`)."""
        return self._without_forgotten(item) is None

    def _without_forgotten(self, item: Any) -> Any:
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
