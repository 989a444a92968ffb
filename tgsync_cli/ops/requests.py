"""`policy` and `remove`: an organizer's word on who may be in the group, through the store.

Neither talks to Telegram: `policy` keeps the join policy in the club, which every serve reads
from there; `remove` writes the same request the app writes, which a running serve applies
within seconds (and records on the request and in the membership log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, Optional

from tgsync_cli.core.errors import InputError, TgsyncError
from tgsync_cli.core.join_policy import (
    POLICIES,
    decline_after_of,
    policy_of,
    set_policy,
)
from tgsync_cli.core.requests import new_request
from tgsync_cli.core.store import Store
from tgsync_cli.runtime.wiring import find_club


@dataclass
class PolicyReport:
    club_id: str
    chat_id: int
    name: str
    join: str
    decline_after_days: Optional[int]

    def as_json(self) -> Dict[str, Any]:
        return {"club_id": self.club_id, "telegram_group_id": self.chat_id, "name": self.name,
                "join_policy": self.join, "decline_after_days": self.decline_after_days}


def set_join_policy(store: Store, chat: str, join: Optional[str],
                    decline_after_days: Optional[int]) -> PolicyReport:
    """Set (or, with no `join`, show) a club's join policy."""
    club = find_club(store, chat)
    if join is not None:
        if join not in POLICIES:
            raise InputError(f"--join {join!r}: expected one of {', '.join(POLICIES)}")
        if decline_after_days is not None and decline_after_days <= 0:
            raise InputError("--decline-after: expected a positive number of days")
        if not set_policy(store, club["_id"], join, decline_after_days):
            raise TgsyncError(f"club {club['_id']} vanished while its policy was set")
        club = store.club_by_id(club["_id"]) or club
    return PolicyReport(club["_id"], club["telegram_group_id"], club.get("name") or "",
                        policy_of(club), decline_after_of(club))


def request_removal(store: Store, chat: str, telegram_id: int, *, ban: bool, force: bool, yes: bool,
                    requested_by: Any, now: datetime) -> Dict[str, Any]:
    """The request a serve will apply: a remove (ban, then unban) or a ban that keeps them out."""
    club = find_club(store, chat)
    return store.add_request(new_request(club["_id"], telegram_id, "ban" if ban else "remove",
                                         requested_by, now, force=force, yes=yes))
