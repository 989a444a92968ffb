"""Other members' status (routes 3 and 5): guarded changes, departures, late leaves."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Optional

from tgsync_cli.core.errors import (
    TelegramError,
)
from tgsync_cli.core.events import (
    MemberStatusChanged,
    Person,
)
from tgsync_cli.core.models import ACTIVE, ClubInfo
from tgsync_cli.core.rules import (
    club_role,
    club_status,
    is_person,
)

log = logging.getLogger("tgsync.engine")
RECENT_CHANGES = 10000  # member events remembered so their service-message echo costs no store call


class MemberChanges:
    """Part of Engine (see engine.py): relies on its store, gateway, cache and club map."""

    # -- other members' status (routes 3 and 5) ---------------------------------------------------
    def on_member_status(self, ev: MemberStatusChanged) -> None:
        if not is_person(ev.user, self.bot_id) or ev.chat.type in ("channel", "private"):
            return  # channel subscribers are no club's members
        info = self.club(ev.chat.id)
        if info is None:
            return
        # Service messages always apply, admin bot or not: for an admin they repeat the member
        # event (same status, same time: they converge), and after a demotion the bot missed
        # they are all that keeps joins and leaves coming. A join notice says nothing of the
        # role (an admin adding someone as admin), so it leaves the role alone.
        status = club_status(ev.new)
        key = (info.club_id, ev.user.id)
        if ev.via == "service_message" and self.recent_changes.get(key) == (status, ev.at):
            return  # the member event of this very change was applied here: nothing to add
        role = None if ev.via == "service_message" and status == ACTIVE else club_role(ev.new)
        invite = {"invite_link": ev.invite_link, "invited_by": ev.invited_by} if ev.invite_link else None
        created = self.apply_status(info, ev.user, status, role, ev.at, ev.via, extra=invite)
        if ev.via == "chat_member_event":  # applied (a store failure raised above): remember it
            if len(self.recent_changes) >= RECENT_CHANGES:
                self.recent_changes.clear()  # a memo of the last few, not a record
            self.recent_changes[key] = (status, ev.at)
        if created and self.welcome_dm:
            self._welcome_dm(info, ev.user)

    def _welcome_dm(self, info: ClubInfo, user: Person) -> None:
        blocked = self.dm_blocked.get(user.id)
        if blocked is None:
            account = self.store.user_by_telegram_id(user.id)
            blocked = bool(account and account.get("dm_blocked"))
        if blocked:
            return  # they blocked the bot: Telegram would refuse, so it is not asked
        try:
            self.gateway.send_private(user.id, f"Welcome to {info.name} on Ayda Run!")
        except TelegramError:
            pass  # a failed welcome DM is not an error (SPEC §3)

    def apply_status(self, info: ClubInfo, person: Person, status: str, role: Optional[str],
                     at: datetime, source: str, strictly_newer: bool = False,
                     extra: Optional[dict] = None) -> bool:
        """Set a member's status as of `at`; create them if active and unknown. True if created."""
        cid, tid = info.club_id, person.id
        existing = self.store.member(cid, tid)
        if existing is not None:
            if status != ACTIVE:
                existing = self._message_evidence(cid, tid, existing, at)
            if self.store.set_member(cid, tid, at, existing, status, role, strictly_newer):
                self._cache_status(cid, tid, status)
            elif existing.get("status") == ACTIVE:
                self.cache.add(cid, tid)
            return False
        if status != ACTIVE:
            self.store.record_departure(cid, tid, status, at)  # no account, no membership
            self.cache.evict(cid, tid)
            return False
        departure = self.store.departure(cid, tid)
        status_at, role_at = at, (at if role is not None else None)
        if departure is not None and (departure["at"] > at or (strictly_newer and departure["at"] == at)):
            # the later leave still holds, and with it the role a leave maps to
            status, status_at, role, role_at = departure["status"], departure["at"], "member", departure["at"]
        elif departure is not None and role is None:
            role, role_at = "member", departure["at"]  # the leave's role stands until a newer role event
        user_id = self.store.upsert_user(person, at)
        doc = {"user_id": user_id, "telegram_id": tid, "username": person.username,
               "first_name": person.first_name, "role": role or "member", "status": status,
               "joined_at": at, "last_seen": None, "source": source, "status_at": status_at,
               "role_at": role_at, **(extra or {})}
        created = self.store.add_member(cid, doc)
        if not created:  # another process added them first: fall back to the guarded update
            current = self.store.member(cid, tid)
            if current is not None:
                self.store.set_member(cid, tid, at, current, status, role, strictly_newer)
        if departure is not None:
            self.store.clear_departure(cid, tid)
        self._cache_status(cid, tid, status)
        return created and status == ACTIVE

    def _message_evidence(self, cid: str, tid: int, existing: dict, at: datetime) -> dict:
        """A leave that arrives after a newer message (hot path: no status_at written) is late:
        the message proves membership after it. Record that proof first so the guard holds."""
        seen = max(filter(None, (self.last_seen.get((cid, tid)), existing.get("last_seen"))), default=None)
        if seen is None or seen <= at or (existing.get("status_at") and existing["status_at"] >= seen):
            return existing
        self.store.set_member(cid, tid, seen, existing, ACTIVE, None, strictly_newer=True)
        return self.store.member(cid, tid) or existing

    def _cache_status(self, cid: str, tid: int, status: str) -> None:
        if status == ACTIVE:
            self.cache.add(cid, tid)
        else:
            self.cache.evict(cid, tid)
