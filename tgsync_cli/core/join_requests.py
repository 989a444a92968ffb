"""Join requests under a club's `roster` policy: the app's roster decides who gets in.

A requester who is an active member of the club in the store is approved at once. Anyone else is
written to in private — within the five minutes Telegram allows a bot to write to a requester who
never opened it — with the club's registration button, and the request is left pending: pressing
the button (route 2) while it is pending registers them and approves it. Nobody is declined here:
only an admin does that, or `decline_after_days` when the organizers set it.

Every answer is kept in the requests ledger (`core.requests`), so history and stats can say who
was approved, who is waiting and who was declined.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional, Tuple

from tgsync_cli.core.clubs import BotSelf, ClubDirectory, Note
from tgsync_cli.core.errors import (
    AlreadyParticipant,
    JoinRequestMissing,
    TelegramError,
    TelegramUnavailable,
)
from tgsync_cli.core.events import JoinRequested, Person
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.join_policy import ROSTER, decline_after_of, on_roster, policy_of
from tgsync_cli.core.models import ClubInfo
from tgsync_cli.core.requests import (
    APPROVED,
    DECLINED,
    DONE,
    FAILED,
    GONE,
    ORIGIN_TELEGRAM,
    WAITING,
    new_request,
)
from tgsync_cli.core.requests import (
    ROSTER as BY_ROSTER,
)
from tgsync_cli.core.rules import deep_link, is_person
from tgsync_cli.core.store import Store

BUTTON = "Register in the club"

Answer = Tuple[str, Optional[str]]  # (outcome, reason)


class JoinRequestHandler:
    def __init__(self, clubs: ClubDirectory, store: Store, gateway: TelegramGateway, me: BotSelf,
                 note: Note) -> None:
        self.clubs = clubs
        self.store = store
        self.gateway = gateway
        self.me = me
        self.note = note

    def __call__(self, ev: JoinRequested) -> None:
        if not is_person(ev.user, self.me.id) or ev.chat.type in ("channel", "private"):
            return
        info = self.clubs.club(ev.chat.id)
        if info is None:
            return
        # one read: the policy and the roster come with the club (the policy may have been
        # changed by another process, so it is not taken from memory)
        club = self.store.club_by_id(info.club_id)
        if club is not None:
            info.join_policy = policy_of(club)
        if policy_of(club) != ROSTER:
            return  # open: the group's admins answer join requests
        uid = ev.user.id
        if on_roster((club or {}).get("members") or (), uid):
            outcome, reason = self.approve(info, uid)
            self.note(f"join request of {uid} in {info.chat_id}: on the roster, {outcome}")
            self.store.add_request({**new_request(info.club_id, uid, "approve", BY_ROSTER, ev.at,
                                                  state=DONE, origin=ORIGIN_TELEGRAM),
                                    "outcome": outcome, "reason": reason, "done_at": ev.at})
            return
        self.store.open_join_request(new_request(info.club_id, uid, "approve", BY_ROSTER, ev.at,
                                                 state=WAITING, origin=ORIGIN_TELEGRAM))
        self._send_button(info, ev.user_chat_id, uid)

    def _send_button(self, info: ClubInfo, chat: int, uid: int) -> None:
        username = self.me.username
        try:
            if not username:
                username = self.me.username = self.gateway.me().username
            text = (f"Thanks for asking to join {info.name or 'the group'}! It lets in the members of "
                    "its Ayda Run club: tap the button to register, and your request is approved.")
            if not self.gateway.send_private(chat, text, BUTTON, deep_link(username, info.chat_id)):
                self.note(f"join request of {uid} in {info.chat_id}: Telegram refused the private "
                          "message; the request stays pending")
        except TelegramError as exc:
            self.note(f"join request of {uid} in {info.chat_id}: button not sent ({exc}); "
                      "the request stays pending")

    # -- answers --------------------------------------------------------------------------------
    def approve(self, info: ClubInfo, uid: int) -> Answer:
        """Telegram's answer, as an outcome: someone already in the group is approved too (the
        result the request asked for); a request that is gone is reported, not retried."""
        try:
            self.clubs.tg(info, self.gateway.approve_join_request, uid)
            return APPROVED, None
        except AlreadyParticipant:
            return APPROVED, "already in the group"
        except JoinRequestMissing:
            return GONE, "no pending join request (answered by an admin or withdrawn)"
        except TelegramUnavailable:
            raise
        except TelegramError as exc:
            return FAILED, str(exc)

    def approve_registered(self, info: ClubInfo, person: Person, at: datetime) -> Answer:
        """They pressed the button with a request pending: approve it and close the ledger."""
        outcome, reason = self.approve(info, person.id)
        if outcome == GONE:
            reason = "no longer pending (declined by an admin or withdrawn)"
        if outcome in (APPROVED, GONE):
            self.store.close_join_requests(info.club_id, person.id, {
                "outcome": outcome, "reason": reason or "registered", "done_at": at,
                "done_by": person.id if outcome == APPROVED else None})
        return outcome, reason

    def note_admin_answer(self, info: ClubInfo, uid: int, by: Optional[int], at: datetime) -> None:
        """An admin let in someone whose request was waiting: the ledger says who."""
        self.store.close_join_requests(info.club_id, uid, {
            "outcome": APPROVED, "reason": "approved by an admin", "done_at": at, "done_by": by})

    def decline_stale(self, now: datetime) -> int:
        """Requests waiting longer than their club's `decline_after_days`: declined, and said so
        in the ledger. A request Telegram no longer has is closed as gone."""
        waiting = self.store.requests_of(states=(WAITING,))
        if not waiting:
            return 0
        declined = 0
        clubs = {}
        for req in waiting:
            cid = req["club_id"]
            if cid not in clubs:
                clubs[cid] = self.store.club_by_id(cid)
            club = clubs[cid]
            days = decline_after_of(club)
            if club is None or days is None or req["at"] is None or req["at"] > now - timedelta(days=days):
                continue
            info = self.clubs.club(club["telegram_group_id"], discover=False)
            if info is None:
                continue
            try:
                self.clubs.tg(info, self.gateway.decline_join_request, req["telegram_id"])
                outcome, reason = DECLINED, f"waited more than {days} days"
            except JoinRequestMissing:
                outcome, reason = GONE, "no pending join request (answered by an admin or withdrawn)"
            except TelegramError as exc:
                self.note(f"join request of {req['telegram_id']} not declined: {exc}")
                continue
            self.store.close_join_requests(cid, req["telegram_id"], {
                "outcome": outcome, "reason": reason, "done_at": now, "done_by": "decline-after"})
            declined += outcome == DECLINED
        return declined
