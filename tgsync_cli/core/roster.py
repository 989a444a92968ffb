"""Listings (routes 1 and 6) and reconcile: a listing observes each member's status at its time."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterable, Optional

from tgsync_cli.core.errors import (
    BotNotInChat,
    TelegramError,
    TelegramUnavailable,
)
from tgsync_cli.core.events import (
    RosterEntry,
)
from tgsync_cli.core.models import ACTIVE, ClubInfo, ReconcileReport, RosterResult
from tgsync_cli.core.store import Observation
from tgsync_cli.core.rules import (
    club_role,
    club_status,
    is_person,
)

log = logging.getLogger("tgsync.engine")


class RosterSync:
    """Part of Engine (see engine.py): relies on its store, gateway, cache and club map."""

    # -- listings (routes 1 and 6, reconcile) -----------------------------------------------------
    def apply_roster(self, info: ClubInfo, entries: Iterable[RosterEntry], at: datetime,
                     source: str, complete: bool = False) -> RosterResult:
        """A listing is an observation of each member's status at `at`; one bulk write per call."""
        result = RosterResult()
        people = {}
        for e in entries:
            if is_person(e.person, self.bot_id):
                people[e.person.id] = e
            else:
                result.skipped += 1
        result.listed_ids = set(people)
        obs = [Observation(e.person, club_status(e.state), club_role(e.state), at, source)
               for e in people.values()]
        outcomes = self.store.observe_many(info.club_id, obs, complete_at=at if complete else None)
        for i, out in enumerate(outcomes):
            if out.status is not None:
                self._cache_status(info.club_id, out.telegram_id, out.status)
            if i >= len(obs):  # an active member the whole listing no longer names
                result.marked_left += int(out.changed)
            elif out.created:
                result.added += int(out.status == ACTIVE)
            elif out.changed:
                result.updated += 1
            else:
                result.unchanged += 1
        return result

    def import_members(self, info: ClubInfo, at: datetime, progress=None) -> RosterResult:
        """Route 6: every member Telegram lists, one bulk write per page."""
        total = RosterResult()
        for page in self.gateway.iter_member_pages(info.chat_id):
            r = self.apply_roster(info, [RosterEntry(m.person, m.state) for m in page], at,
                                  "member_import")
            total.added += r.added
            total.updated += r.updated
            total.unchanged += r.unchanged
            total.skipped += r.skipped
            total.listed_ids |= r.listed_ids
            if progress is not None:
                progress(len(page))
        return total

    def reconcile(self, info: ClubInfo, at: datetime, dry_run: bool = False) -> ReconcileReport:
        """Counts always; a full roster diff where the bot may list members (SPEC §3)."""
        count: Optional[int] = None
        present, admin, listed, reason = info.bot_present, info.bot_is_admin, False, ""
        result = RosterResult()
        try:
            count = self.gateway.member_count(info.chat_id)
            present = True
        except BotNotInChat as exc:
            present, admin, reason = False, False, f"bot is not in the group ({exc})"
        if present:
            try:
                pages = list(self.gateway.iter_member_pages(info.chat_id))
                listed, admin = True, True
            except TelegramError as exc:
                reason = f"members cannot be listed: {exc}"
                pages = []
                if not isinstance(exc, TelegramUnavailable):
                    admin = False
            if listed and not dry_run:
                entries = [RosterEntry(m.person, m.state) for page in pages for m in page]
                whole = count is None or sum(len(p) for p in pages) >= count
                result = self.apply_roster(info, entries, at, "member_import", complete=whole)
                if not whole:
                    reason = "Telegram listed fewer members than it counts (server limit): none marked left"
            elif listed:
                result = self._dry_diff(info, [m for p in pages for m in p])
        ayda = self._active_count(info)
        humans = count
        if listed:
            humans = sum(1 for p in pages for m in p if is_person(m.person, self.bot_id)
                         and club_status(m.state) == ACTIVE)
        elif count is not None:
            humans = max(count - 1, 0)  # the count includes this bot
        drift = None if humans is None else abs(humans - ayda)
        if not dry_run:
            self.store.update_sync(info.club_id, {
                "last_sync": at, "bot_is_admin": admin, "bot_present": present,
                "total_members_telegram": count, "total_members_ayda": ayda, "drift": drift})
            info.bot_is_admin, info.bot_present = admin, present
            # departure records only bridge late deliveries; a week on, nothing late is coming
            self.store.prune_departures(at)
        return ReconcileReport(info.club_id, info.chat_id, info.name, count, ayda, drift, listed,
                               reason or "roster listed and compared", result.added,
                               result.marked_left, result.updated, present, admin)

    def _dry_diff(self, info: ClubInfo, members) -> RosterResult:
        doc = self.store.club_by_id(info.club_id) or {}
        active = {m["telegram_id"] for m in doc.get("members", []) if m.get("status") == ACTIVE}
        listed = {m.person.id for m in members
                  if is_person(m.person, self.bot_id) and club_status(m.state) == ACTIVE}
        return RosterResult(added=len(listed - active), marked_left=len(active - listed))

    def _active_count(self, info: ClubInfo) -> int:
        return self.store.active_count(info.club_id)
