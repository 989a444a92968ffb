"""A club's join policy, kept in its `sync` fields: who answers the group's join requests.

`open` (the default) leaves them to the group's admins, as before tgsync knew of them. `roster`
lets in at once whoever is an active member of the club in the store (the app's roster), and
sends everyone else the club's registration button; `decline_after_days` (off unless set)
declines requests nobody answered in that many days.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from tgsync_cli.core.evidence import ACTIVE
from tgsync_cli.core.models import ClubInfo
from tgsync_cli.core.store import Store

OPEN, ROSTER = "open", "roster"
POLICIES = (OPEN, ROSTER)
POLICY_KEY, DECLINE_KEY = "join_policy", "decline_after_days"


def policy_of(club: Optional[Mapping[str, Any]]) -> str:
    sync = (club or {}).get("sync") or {}
    value = sync.get(POLICY_KEY)
    return value if value in POLICIES else OPEN


def decline_after_of(club: Optional[Mapping[str, Any]]) -> Optional[int]:
    value = ((club or {}).get("sync") or {}).get(DECLINE_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _same_id(value: Any, tid: int) -> bool:
    """The app may store a telegram_id as text or a double: the same person."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == tid
    return isinstance(value, str) and value.strip() == str(tid)


def on_roster(members: Iterable[Mapping[str, Any]], tid: int) -> bool:
    """An active member of the club with this Telegram id, by any route — an entry the app
    added itself with no status counts as on its roster."""
    return any(_same_id(m.get("telegram_id"), tid) and m.get("status", ACTIVE) in (ACTIVE, None)
               for m in members)


def set_policy(store: Store, club_id: str, join: str, decline_after_days: Optional[int] = None,
               info: Optional[ClubInfo] = None) -> bool:
    """Keep the policy in the club: every process reads it from there (`info`, this process's
    copy, at once). False when there is no such club."""
    if join not in POLICIES:
        raise ValueError(f"join policy must be one of {', '.join(POLICIES)}")
    done = store.update_sync(club_id, {POLICY_KEY: join, DECLINE_KEY: decline_after_days})
    if info is not None:
        info.join_policy = join
    return done
