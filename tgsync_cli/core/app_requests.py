"""The app's requests applied in Telegram: remove, ban, unban, approve — each exactly once.

`serve` polls the ledger every few seconds (`poll`). A request is first claimed in the store (a
guarded state change, so of two serves one takes it), then checked against the guards, then
done in Telegram, then finished with its outcome — the finish guarded on the same claim. A serve
killed in between leaves a claim that goes stale; the next serve takes it over and does it again,
which is safe because Telegram answers an action already done with success (banning the banned,
unbanning the unbanned, approving someone already in), and a remove whose first attempt already
got the person out is recorded as done, not as "not in the group".

Guards: never the group's creator (Telegram refuses anyway) or the bot itself; an admin only when
the request says `force`; and no more than a fifth of a club removed in one day unless the
request says `yes` (the first removal of the day always passes, or a small club could never
remove anyone) — over that, the request is `held` and says why. A remove or ban of someone who
is not in the group is closed with that reason (a ban of someone already banned is done).

The membership_log entries come from Telegram's own updates about the change, which the member
handler attributes to the request (source `app_request`, actor = who asked).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Dict, Optional, Tuple

from tgsync_cli.core.clubs import BotSelf, ClubDirectory, Note
from tgsync_cli.core.errors import (
    AdminRequired,
    CannotRemove,
    TelegramError,
    TelegramUnavailable,
)
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.join_requests import JoinRequestHandler
from tgsync_cli.core.models import ClubInfo
from tgsync_cli.core.requests import (
    APPLYING,
    APPROVED,
    BANNED,
    CLAIM_STALE_SECONDS,
    DONE,
    FAILED,
    HELD,
    NOT_IN_GROUP,
    OPEN_STATES,
    PENDING,
    REFUSED,
    REMOVED,
    UNBANNED,
)
from tgsync_cli.core.rules import club_status
from tgsync_cli.core.store import Store

DAILY_SHARE = 0.20  # of a club's members removed or banned in a day, beyond which --yes is needed

Result = Optional[Tuple[str, Optional[str]]]  # (outcome, reason); None: try again later


class RequestDesk:
    def __init__(self, clubs: ClubDirectory, store: Store, gateway: TelegramGateway, me: BotSelf,
                 join_requests: JoinRequestHandler, note: Note) -> None:
        self.clubs = clubs
        self.store = store
        self.gateway = gateway
        self.me = me
        self.join_requests = join_requests
        self.note = note

    def poll(self, now: datetime) -> int:
        """Apply every open request (and decline join requests past their club's limit).
        Returns how many requests were finished."""
        done = 0
        stale_before = now - timedelta(seconds=CLAIM_STALE_SECONDS)
        for req in self.store.requests_of(states=OPEN_STATES):
            if req["state"] == APPLYING and req["claimed_at"] is not None and req["claimed_at"] >= stale_before:
                continue  # another serve is on it
            done += self.apply(req["_id"], now)
        self.join_requests.decline_stale(now)
        return done

    def apply(self, req_id: Any, now: datetime) -> int:
        token = uuid.uuid4().hex
        req = self.store.claim_request(req_id, token, now, now - timedelta(seconds=CLAIM_STALE_SECONDS))
        if req is None:
            return 0  # another serve took it, or it is finished
        try:
            result = self._carry_out(req, now)
        except TelegramUnavailable as exc:
            result = None
            self.note(f"request {req_id} waits: {exc}")
        if result is None:  # nothing was decided: released for the next poll
            self.store.finish_request(req_id, token, {"state": PENDING, "claim": None, "claimed_at": None})
            return 0
        outcome, reason = result
        fields: Dict[str, Any] = {"outcome": None if outcome == HELD else outcome, "reason": reason,
                                  "done_at": now, "state": HELD if outcome == HELD else DONE}
        if self.store.finish_request(req_id, token, fields):
            self.note(f"request {req_id} ({req['action']} {req['telegram_id']}): "
                      f"{'held' if outcome == HELD else outcome}{f' ({reason})' if reason else ''}")
            return 1
        return 0  # our claim was taken over meanwhile: the other serve records it

    # -- one request ------------------------------------------------------------------------------
    def _club(self, club_id: str) -> Optional[ClubInfo]:
        for info in self.clubs.clubs():
            if info.club_id == club_id:
                return info
        doc = self.store.club_by_id(club_id)
        return self.clubs.remember(doc) if doc is not None and doc.get("telegram_group_id") else None

    def _carry_out(self, req: Dict[str, Any], now: datetime) -> Result:
        if req["problem"]:
            return REFUSED, req["problem"]
        info = self._club(req["club_id"])
        if info is None:
            return REFUSED, "no such club (or it has no Telegram group)"
        tid, action = req["telegram_id"], req["action"]
        if tid == self.me.id:
            return REFUSED, "the bot itself"
        if action == "approve":
            outcome, reason = self.join_requests.approve(info, tid)
            if outcome == APPROVED:
                self.store.close_join_requests(info.club_id, tid, {
                    "outcome": APPROVED, "reason": "approved at the app's request", "done_at": now,
                    "done_by": req["requested_by"]})
            return outcome, reason
        try:
            state = self.clubs.tg(info, self.gateway.get_member, tid).state
        except TelegramUnavailable:
            raise
        except TelegramError as exc:
            return FAILED, str(exc)
        if state.status == "creator":
            return REFUSED, "the group's creator"
        if state.status == "administrator" and not req["force"]:
            return REFUSED, "an admin of the group (a request with force may name them)"
        present = club_status(state) == "active"
        if action == "unban":
            if state.status != "kicked":
                return UNBANNED, "was not banned"
            return self._telegram(info, tid, unban=True) or (UNBANNED, None)
        if action == "ban" and state.status == "kicked":
            return BANNED, "already banned"
        if not present:
            if action == "remove" and req["attempts"] > 1:
                return REMOVED, None  # a serve that died got them out before it could say so
            return NOT_IN_GROUP, "not in the group"
        if not req["yes"] and self._over_daily_share(info, now):
            return HELD, (f"would remove more than {DAILY_SHARE:.0%} of the club today; "
                          "a request with yes may")
        failed = self._telegram(info, tid, ban=True, unban=action == "remove")
        if failed is not None:
            return failed
        return (REMOVED if action == "remove" else BANNED), None

    def _telegram(self, info: ClubInfo, tid: int, ban: bool = False, unban: bool = False) -> Result:
        """Ban and/or unban; a refusal as an outcome (None: done)."""
        try:
            if ban:
                self.clubs.tg(info, self.gateway.ban_member, tid)
            if unban:
                self.clubs.tg(info, self.gateway.unban_member, tid)
        except TelegramUnavailable:
            raise
        except CannotRemove as exc:
            return REFUSED, str(exc)
        except AdminRequired as exc:
            return FAILED, f"{exc}; make the bot an admin that may ban users"
        except TelegramError as exc:
            return FAILED, str(exc)
        return None

    def _over_daily_share(self, info: ClubInfo, now: datetime) -> bool:
        today = [r for r in self.store.requests_of(info.club_id, states=(DONE,),
                                                    since=now - timedelta(days=1))
                 if r["outcome"] in (REMOVED, BANNED) and r["reason"] is None]
        if not today:
            return False
        active = self.store.active_count(info.club_id)
        return (len(today) + 1) > DAILY_SHARE * (active + len(today))
