"""The documents a store gives back, as types: what every backend's reads return.

They are the MongoDB documents the Ayda Run app reads (the embedded store renders the same ones
from its tables). Keys the app may leave out of a document it wrote are not required, so code
that reads them says what it does when one is missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, TypedDict


class MemberDoc(TypedDict, total=False):
    """One member entry of a club (`members`); `hard_at`, `proof_at`, `prior_at`, `confirmed_at` and
    `seen_times` are the store's own."""

    user_id: Optional[str]
    telegram_id: int
    username: Optional[str]
    first_name: Optional[str]
    role: str                     # organizer | member (or a role the app set)
    status: str                   # active | left | kicked
    joined_at: Optional[datetime]
    last_seen: Optional[datetime]
    source: Optional[str]         # the route of the earliest evidence
    status_at: Optional[datetime]
    role_at: Optional[datetime]
    invited_by: Optional[int]
    invite_link: Optional[str]
    hard_at: Optional[datetime]
    proof_at: Optional[datetime]
    prior_at: Optional[datetime]
    confirmed_at: Optional[List[datetime]]
    seen_times: Optional[List[datetime]]


class ClubDoc(TypedDict, total=False):
    """A club: one Telegram group and its members."""

    _id: str
    name: Optional[str]
    telegram_group_id: int
    created_by: Optional[str]
    members: List[MemberDoc]
    sync: Dict[str, Any]
    username: str
    previous_group_ids: List[int]


class ClubIndexEntry(TypedDict, total=False):
    """A club as start-up and re-warm need it: its map entry and its active members' ids."""

    _id: str
    telegram_group_id: int
    previous_group_ids: List[int]
    name: Optional[str]
    username: Optional[str]
    sync: Dict[str, Any]
    version: int
    active: List[int]


class UserDoc(TypedDict, total=False):
    """An account (`users`)."""

    _id: str
    telegram_id: int
    username: Optional[str]
    first_name: Optional[str]
    last_name: Optional[str]
    language_code: Optional[str]
    created_at: Optional[datetime]
    updated_at: Optional[datetime]
    dm_blocked: bool


class DepartureDoc(TypedDict):
    """A leave or kick of someone with no membership, kept a week."""

    club_id: str
    telegram_id: int
    status: str
    at: datetime


class StatusRole(TypedDict):
    status: Optional[str]
    role: Optional[str]


# `from` is a Python keyword: the functional form names it
LogEntry = TypedDict("LogEntry", {
    "club_id": str, "telegram_id": int, "at": datetime, "from": Optional[StatusRole],
    "to": StatusRole, "source": Optional[str], "actor": Optional[int],
    "invite_link": Optional[str], "invited_by": Optional[int],
}, total=False)


class ReconcileRecord(TypedDict):
    """One reconcile's figures, for `stats`."""

    club_id: str
    at: datetime
    total_members_telegram: Optional[int]
    active: int
    drift: Optional[int]


class MembershipOf(MemberDoc, total=False):
    """A person's membership with the club it is in, for `member`."""

    club_id: str
    club_name: Optional[str]
    telegram_group_id: int


class ClubRef(TypedDict):
    club_id: str
    name: Optional[str]
    telegram_group_id: Optional[int]


class ForgetReport(TypedDict, total=False):
    """What `forget` erases (or, previewed, would erase)."""

    clubs: List[ClubRef]
    accounts: int
    departures: int
    created_by_cleared: int
    app_account_kept: Optional[str]  # the app's account (its _id) that keeps its own fields


# `store copy`: each collection's documents, as exported and imported
Documents = Dict[str, List[Dict[str, Any]]]
