"""Other members' status (routes 3 and 5): guarded changes, departures, late leaves."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Optional, Tuple

from tgsync_cli.core.cache import MemberCache, cache_status
from tgsync_cli.core.clubs import BotSelf, ClubDirectory
from tgsync_cli.core.errors import TelegramError
from tgsync_cli.core.events import MemberStatusChanged, Person
from tgsync_cli.core.evidence import ACTIVE, Observation
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.join_requests import JoinRequestHandler
from tgsync_cli.core.models import ClubInfo
from tgsync_cli.core.requests import APPLYING, DONE, ROUTE
from tgsync_cli.core.rules import club_role, club_status, is_person
from tgsync_cli.core.seen import SeenBuffer
from tgsync_cli.core.store import Store

RECENT_CHANGES = 10000  # member events remembered so their service-message echo costs no store call


class MemberStatusHandler:
    def __init__(self, clubs: ClubDirectory, seen: SeenBuffer, store: Store, cache: MemberCache,
                 gateway: TelegramGateway, me: BotSelf, dm_blocked: Dict[int, bool],
                 join_requests: JoinRequestHandler, welcome_dm: bool) -> None:
        self.clubs = clubs
        self.join_requests = join_requests
        self.seen = seen
        self.store = store
        self.cache = cache
        self.gateway = gateway
        self.me = me
        self.dm_blocked = dm_blocked  # private my_chat_member seen by this process
        self.welcome_dm = welcome_dm
        self.recent_changes: Dict[Tuple[str, int], Tuple[str, datetime]] = {}

    def __call__(self, ev: MemberStatusChanged) -> None:
        if not is_person(ev.user, self.me.id) or ev.chat.type in ("channel", "private"):
            return  # channel subscribers are no club's members
        info = self.clubs.club(ev.chat.id)
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
        source, asker = ev.via, None
        if status != ACTIVE and ev.actor is not None and ev.actor.id == self.me.id:
            asker = self._request_behind(info, ev.user.id, ev.at)
            if asker is not None:
                source = ROUTE  # the bot acted on a request: the log names who asked
        created = self.apply_status(info, ev.user, status, role, ev.at, source, actor=ev.actor,
                                    invited_by=ev.invited_by, invite_link=ev.invite_link,
                                    asker=asker)
        if ev.via_join_request and status == ACTIVE and (ev.actor is None or ev.actor.id != self.me.id):
            self.join_requests.note_admin_answer(info, ev.user.id, ev.actor.id if ev.actor else None, ev.at)
        if ev.via == "chat_member_event":  # applied (a store failure raised above): remember it
            if len(self.recent_changes) >= RECENT_CHANGES:
                self.recent_changes.clear()  # a memo of the last few, not a record
            self.recent_changes[key] = (status, ev.at)
        if created and self.welcome_dm:
            self._welcome_dm(info, ev.user)

    def _request_behind(self, info: ClubInfo, tid: int, at: datetime) -> Optional[Any]:
        """Who asked for the removal, ban or unban the bot just made (None: nobody did — an
        operator used the bot's account some other way)."""
        asked = [r for r in self.store.requests_of(info.club_id, states=(APPLYING, DONE), telegram_id=tid)
                 if r["action"] in ("remove", "ban", "unban") and r["at"] is not None and r["at"] <= at]
        return asked[-1]["requested_by"] if asked else None

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
            pass  # a failed welcome DM is not an error

    def apply_status(self, info: ClubInfo, person: Person, status: str, role: Optional[str],
                     at: datetime, source: str,
                     actor: Optional[Person] = None, invited_by: Optional[int] = None,
                     invite_link: Optional[str] = None, asker: Optional[Any] = None) -> bool:
        """Set a member's status as of `at`; create them if active and unknown. True if created.

        One store call: the store creates the account and membership, or applies the guards,
        or notes a departure, in one transaction. An unflushed newer message is passed along
        (`seen_at`), so a late leave cannot undo what the hot path saw."""
        cid, tid = info.club_id, person.id
        out = self.store.observe(cid, Observation(
            person, status, role, at, source,
            seen_at=self.seen.newest((cid, tid)) if status != ACTIVE else None,
            actor=asker if asker is not None else actor.id if actor is not None else None,
            invited_by=invited_by, invite_link=invite_link))
        cache_status(self.cache, cid, tid, out.status)
        return out.created and out.status == ACTIVE
