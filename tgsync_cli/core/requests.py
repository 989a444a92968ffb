"""Requests: what the app (or an organizer) asks tgsync to do to a member in Telegram, and the
join requests tgsync answers — one ledger, so history and stats can say who asked for what.

A request document: `{_id, club_id, telegram_id, action, requested_by, at, state, force, yes,
origin, outcome, reason, done_at, claim, claimed_at, attempts}`. The app writes the first six
(and `force`/`yes` when it means them); tgsync writes the rest. States:

- `pending`: to be applied by the next serve that polls (the app may leave `state` out);
- `applying`: claimed by one serve (`claim` token, `claimed_at`); a claim older than
  CLAIM_STALE_SECONDS belongs to a serve that died, and the next one takes it over;
- `held`: it would remove more than a fifth of the club in a day; a request with `yes` may;
- `waiting`: a join request under the roster policy, waiting for the person to register;
- `done`: `outcome` says what happened, `reason` why when it was not what was asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Optional

from tgsync_cli.core.rules import parse_iso

ACTIONS = ("remove", "ban", "unban", "approve")
PENDING, APPLYING, HELD, WAITING, DONE = "pending", "applying", "held", "waiting", "done"
STATES = (PENDING, APPLYING, HELD, WAITING, DONE)
OPEN_STATES = (PENDING, APPLYING)  # what a serve's poll looks at
CLAIM_STALE_SECONDS = 120  # a claim this old was left by a serve that died mid-way
ORIGIN_APP, ORIGIN_TELEGRAM = "app", "telegram"
ROUTE = "app_request"  # the membership_log source of a change a request made
ROSTER = "roster"  # requested_by of a join request answered by the roster policy
MAX_TEXT = 200  # requested_by and reason are bounded: the app's text is not trusted

# outcomes
APPROVED, DECLINED, REMOVED, BANNED, UNBANNED = "approved", "declined", "removed", "banned", "unbanned"
REFUSED, FAILED, NOT_IN_GROUP, GONE = "refused", "failed", "not_in_group", "gone"


def new_request(club_id: str, telegram_id: int, action: str, requested_by: Any, at: datetime, *,
                force: bool = False, yes: bool = False, state: str = PENDING,
                origin: str = ORIGIN_APP) -> Dict[str, Any]:
    return {"club_id": club_id, "telegram_id": int(telegram_id), "action": action,
            "requested_by": requested_by, "at": at, "state": state, "force": bool(force),
            "yes": bool(yes), "origin": origin, "outcome": None, "reason": None, "done_at": None,
            "attempts": 0}


def _time(v: Any) -> Optional[datetime]:
    if isinstance(v, datetime):
        return v.replace(tzinfo=None) if v.tzinfo is None else parse_iso(v.isoformat())
    if isinstance(v, str):
        try:
            return parse_iso(v)
        except ValueError:
            return None
    return None


def _tid(v: Any) -> Optional[int]:
    """A telegram_id as the app may write it: int, int64, a whole double or a digit string."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v.strip())
    return None


def _bounded(v: Any) -> Any:
    if isinstance(v, str):
        return v[:MAX_TEXT]
    return v if isinstance(v, (int, type(None))) and not isinstance(v, bool) else str(v)[:MAX_TEXT]


def read_request(doc: Dict[str, Any]) -> Dict[str, Any]:
    """A request as tgsync uses it, whatever shape the app wrote: string dates and ids, no
    `state` (pending), flags missing. `problem` names what makes it unusable (it is then closed
    with that reason, never applied, never a crash)."""
    out = dict(doc)
    out["telegram_id"] = _tid(doc.get("telegram_id"))
    out["at"] = _time(doc.get("at"))
    out["done_at"] = _time(doc.get("done_at"))
    out["claimed_at"] = _time(doc.get("claimed_at"))
    out["state"] = doc.get("state") if doc.get("state") in STATES else PENDING
    out["requested_by"] = _bounded(doc.get("requested_by"))
    out["force"] = doc.get("force") is True
    out["yes"] = doc.get("yes") is True
    out["origin"] = doc.get("origin") or ORIGIN_APP
    out["attempts"] = doc.get("attempts") if isinstance(doc.get("attempts"), int) else 0
    problem = None
    if out["telegram_id"] is None or out["telegram_id"] <= 0:
        problem = "telegram_id is not a user id"
    elif doc.get("action") not in ACTIONS:
        problem = f"action must be one of {', '.join(ACTIONS)}"
    elif not isinstance(doc.get("club_id"), str):
        problem = "club_id is missing"
    out["problem"] = problem
    return out
