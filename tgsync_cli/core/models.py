"""What the engine reports and keeps in memory about clubs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Set

from tgsync_cli.core.evidence import ACTIVE  # noqa: F401 (re-exported)


@dataclass
class ClubInfo:
    """What the hot path and route 5 need about a club, kept in memory."""

    club_id: str
    chat_id: int
    name: str = ""
    bot_is_admin: bool = False
    bot_present: bool = False
    username: Optional[str] = None  # the public group's @username, for `roster @name`
    join_policy: str = "open"  # as last read: the join-request handler reads the store again
    bot_can_invite: Optional[bool] = None  # the admin right join requests need; None: not known


@dataclass
class RosterResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    marked_left: int = 0
    listed_ids: Set[int] = field(default_factory=set)


@dataclass
class ReconcileReport:
    club_id: str
    chat_id: int
    name: str
    total_members_telegram: Optional[int]
    total_members_ayda: int
    drift: Optional[int]
    listed: bool
    reason: str
    added: int = 0
    marked_left: int = 0
    updated: int = 0
    bot_present: bool = True
    bot_is_admin: bool = False
    held_back_left: int = 0  # members a mass departure would have marked left, not applied
    app_only: int = 0  # active members the app added itself: in the app, not on Telegram
