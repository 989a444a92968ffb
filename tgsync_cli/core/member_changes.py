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
from tgsync_cli.core.store import Observation
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
        created = self.apply_status(info, ev.user, status, role, ev.at, ev.via, actor=ev.actor,
                                    invited_by=ev.invited_by, invite_link=ev.invite_link)
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
                     actor: Optional[Person] = None, invited_by: Optional[int] = None,
                     invite_link: Optional[str] = None) -> bool:
        """Set a member's status as of `at`; create them if active and unknown. True if created.

        One store call: the store creates the account and membership, or applies the guards,
        or notes a departure (SPEC §2), in one transaction. An unflushed newer message is passed
        along (`seen_at`), so a late leave cannot undo what the hot path saw."""
        cid, tid = info.club_id, person.id
        out = self.store.observe(cid, Observation(
            person, status, role, at, source, strictly_newer=strictly_newer,
            seen_at=self.last_seen.get((cid, tid)) if status != ACTIVE else None,
            actor=actor.id if actor is not None else None,
            invited_by=invited_by, invite_link=invite_link))
        if out.status is not None:
            self._cache_status(cid, tid, out.status)
        else:
            self.cache.evict(cid, tid)
        return out.created and out.status == ACTIVE

    def _cache_status(self, cid: str, tid: int, status: str) -> None:
        if status == ACTIVE:
            self.cache.add(cid, tid)
        else:
            self.cache.evict(cid, tid)
