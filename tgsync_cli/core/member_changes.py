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


class MemberChanges:
    """Part of Engine (see engine.py): relies on its store, gateway, cache and club map."""

    # -- other members' status (routes 3 and 5) ---------------------------------------------------
    def on_member_status(self, ev: MemberStatusChanged) -> None:
        if not is_person(ev.user, self.bot_id):
            return
        info = self.club(ev.chat.id)
        if info is None:
            return
        if ev.via == "service_message" and info.bot_is_admin:
            return  # an admin bot receives the richer member event for the same change
        created = self.apply_status(info, ev.user, club_status(ev.new), club_role(ev.new), ev.at,
                                    ev.via, actor=ev.actor, invited_by=getattr(ev, "invited_by", None),
                                    invite_link=getattr(ev, "invite_link", None))
        if created and self.welcome_dm:
            self._welcome_dm(info, ev.user)

    def _welcome_dm(self, info: ClubInfo, user: Person) -> None:
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
