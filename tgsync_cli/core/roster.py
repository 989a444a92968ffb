"""Listings (routes 1 and 6) and reconcile: a listing observes each member's status at its time."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from tgsync_cli.core.cache import MemberCache, cache_status
from tgsync_cli.core.clubs import BotSelf, ClubDirectory, Note
from tgsync_cli.core.errors import BotNotInChat, TelegramError, TelegramUnavailable
from tgsync_cli.core.events import RosterEntry, RosterObserved
from tgsync_cli.core.evidence import ACTIVE, Observation
from tgsync_cli.core.gateway import ChatMemberInfo, TelegramGateway
from tgsync_cli.core.models import ClubInfo, ReconcileReport, RosterResult
from tgsync_cli.core.rules import club_role, club_status, is_person
from tgsync_cli.core.store import Store

MASS_DEPARTURE = 0.20  # marking more of a club left than this needs --yes

Page = Sequence[ChatMemberInfo]


class RosterSync:
    def __init__(self, clubs: ClubDirectory, store: Store, cache: MemberCache,
                 gateway: TelegramGateway, me: BotSelf, note: Note) -> None:
        self.clubs = clubs
        self.store = store
        self.cache = cache
        self.gateway = gateway
        self.me = me
        self.note = note

    def __call__(self, ev: RosterObserved) -> None:
        info = self.clubs.club(ev.chat.id)
        if info is not None:
            self.apply_roster(info, ev.entries, ev.at, ev.source, ev.complete)

    def import_admins(self, info: ClubInfo, at: datetime) -> Optional[RosterResult]:
        """Route 1: the group's administrators become organizers."""
        try:
            admins = self.clubs.tg(info, self.gateway.get_admins)
        except TelegramError as exc:
            self.note(f"admin import for {info.chat_id} skipped: {exc}")
            return None
        entries = [RosterEntry(a.person, a.state) for a in admins]
        return self.apply_roster(info, entries, at, "admin_import")

    def apply_roster(self, info: ClubInfo, entries: Iterable[RosterEntry], at: datetime,
                     source: str, complete: bool = False) -> RosterResult:
        """A listing is an observation of each member's status at `at`; one bulk write per call."""
        result = RosterResult()
        people: Dict[int, RosterEntry] = {}
        for e in entries:
            if is_person(e.person, self.me.id):
                people[e.person.id] = e
            else:
                result.skipped += 1
        result.listed_ids = set(people)
        obs = [Observation(e.person, club_status(e.state), club_role(e.state), at, source)
               for e in people.values()]
        outcomes = self.store.observe_many(info.club_id, obs, complete_at=at if complete else None)
        for i, out in enumerate(outcomes):
            if out.status is not None:
                cache_status(self.cache, info.club_id, out.telegram_id, out.status)
            if i >= len(obs):  # an active member the whole listing no longer names
                result.marked_left += int(out.changed)
            elif out.created:
                result.added += int(out.status == ACTIVE)
            elif out.changed:
                result.updated += 1
            else:
                result.unchanged += 1
        return result

    def import_members(self, info: ClubInfo, at: datetime,
                       progress: Optional[Callable[[int], None]] = None) -> RosterResult:
        """Route 6: every member Telegram lists, one bulk write per page."""
        total = RosterResult()
        for page in self._pages(info):
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

    def _pages(self, info: ClubInfo) -> Iterator[Page]:
        """The member pages, the first fetched now: a generator's refusal (or a migration to
        follow) surfaces here, not in the middle of the caller's loop."""
        def first(chat_id: int) -> Iterator[Page]:
            pages = iter(self.gateway.iter_member_pages(chat_id))
            head = next(pages, None)
            return iter(()) if head is None else itertools.chain([head], pages)
        return self.clubs.tg(info, first)

    def reconcile(self, info: ClubInfo, at: datetime, dry_run: bool = False,
                  allow_mass_departure: bool = False) -> ReconcileReport:
        """Counts always; a full roster diff where the bot may list members.

        Marking members `left` needs the listing to be whole (as many as Telegram counts) and,
        unless `allow_mass_departure` (`--yes`), to touch at most MASS_DEPARTURE of the active
        members: a mass departure is more often a listing gone wrong than a club emptying."""
        count: Optional[int] = None
        present, admin, listed, reason = info.bot_present, info.bot_is_admin, False, ""
        result = RosterResult()
        held_back = 0
        pages: List[Page] = []
        try:
            count = self.clubs.tg(info, self.gateway.member_count)
            present = True
        except BotNotInChat as exc:
            present, admin, reason = False, False, f"bot is not in the group ({exc})"
        if present:
            try:
                pages = list(self._pages(info))
                listed, admin = True, True
            except TelegramError as exc:
                reason = f"members cannot be listed: {exc}"
                pages = []
                if not isinstance(exc, TelegramUnavailable):
                    admin = False
            if listed:
                members = [m for p in pages for m in p]
                whole = count is not None and len(members) >= count
                would, active = self._dry_diff(info, members)
                mass = would.marked_left > MASS_DEPARTURE * active
                if not whole:
                    reason = "Telegram listed fewer members than it counts (server limit): none marked left"
                elif mass and not allow_mass_departure:
                    held_back = would.marked_left
                    reason = (f"would mark {would.marked_left} of {active} active members left "
                              f"(over {MASS_DEPARTURE:.0%}): not applied, rerun with --yes")
                if dry_run:
                    result = would if whole else RosterResult(added=would.added)
                else:
                    entries = [RosterEntry(m.person, m.state) for m in members]
                    result = self.apply_roster(info, entries, at, "member_import",
                                               complete=whole and not held_back)
        ayda = self._active_count(info)  # Telegram members: what drift compares
        app_only = self.store.app_only_active(info.club_id)  # the app's own, never on Telegram
        humans = count
        if listed:
            humans = sum(1 for p in pages for m in p if is_person(m.person, self.me.id)
                         and club_status(m.state) == ACTIVE)
        elif count is not None:
            humans = max(count - 1, 0)  # the count includes this bot
        drift = None if humans is None else abs(humans - ayda)
        if not dry_run:
            self.store.update_sync(info.club_id, {
                "last_sync": at, "bot_is_admin": admin, "bot_present": present,
                "total_members_telegram": count, "total_members_ayda": ayda + app_only, "drift": drift})
            self.clubs.set_bot_status(info, admin, present)
            # each reconcile's figures, so `stats` can show drift over time
            self.store.record_reconcile(info.club_id, at, count, ayda + app_only, drift)
            # departure records only bridge late deliveries; a week on, nothing late is coming
            self.store.prune_departures(at)
        return ReconcileReport(info.club_id, info.chat_id, info.name, count, ayda + app_only, drift, listed,
                               reason or "roster listed and compared", result.added,
                               result.marked_left, result.updated, present, admin, held_back, app_only)

    def _dry_diff(self, info: ClubInfo, members: Sequence[ChatMemberInfo]) -> Tuple[RosterResult, int]:
        """(what applying the listing would add and mark left, how many are active now)."""
        doc = self.store.club_by_id(info.club_id) or {}
        active = {m["telegram_id"] for m in doc.get("members", [])
                  if m.get("status") == ACTIVE and m.get("telegram_id") is not None}
        listed = {m.person.id for m in members
                  if is_person(m.person, self.me.id) and club_status(m.state) == ACTIVE}
        return RosterResult(added=len(listed - active), marked_left=len(active - listed)), len(active)

    def _active_count(self, info: ClubInfo) -> int:
        return self.store.active_count(info.club_id)
