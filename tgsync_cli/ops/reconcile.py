"""Reconcile: Telegram's member count and listing against the club's active members.

The command in `cli/ops.py` parses and renders; every decision lives here, against the same
protocols the engine uses (Store, TelegramGateway, MemberCache), so tests drive these functions
with the simulator's gateway or a stand-in and never connect to Telegram.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from tgsync_cli.core.documents import ClubDoc
from tgsync_cli.core.errors import (
    InputError,
    TgsyncError,
)
from tgsync_cli.core.rules import iso
from tgsync_cli.ops.common import ACTIVE
from tgsync_cli.runtime import wiring as core
from tgsync_cli.runtime.config import Settings
from tgsync_cli.core.store import Store


@dataclass
class ClubReconcile:
    """One club's reconcile, with who changed (read from the store before and after)."""

    club_id: str
    chat_id: int
    name: str
    total_members_telegram: Optional[int] = None
    total_members_ayda: Optional[int] = None
    drift: Optional[int] = None
    listed: bool = False
    reason: str = ""
    bot_present: Optional[bool] = None
    bot_is_admin: Optional[bool] = None
    added: List[int] = field(default_factory=list)
    marked_left: List[int] = field(default_factory=list)
    reactivated: List[int] = field(default_factory=list)
    role_changed: List[int] = field(default_factory=list)
    would_add: int = 0
    would_mark_left: int = 0
    held_back_left: int = 0  # a mass departure (over 20 %) shown, not applied without --yes
    app_only: List[str] = field(default_factory=list)  # in the app, not on Telegram (their user_id)
    error: Optional[str] = None

    def as_json(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class ReconcileOutcome:
    clubs: List[ClubReconcile]
    threshold: int
    dry_run: bool
    at: datetime

    @property
    def over_threshold(self) -> List[ClubReconcile]:
        return [c for c in self.clubs if c.drift is not None and c.drift > self.threshold]

    @property
    def failed(self) -> List[ClubReconcile]:
        return [c for c in self.clubs if c.error is not None]

    @property
    def exit_code(self) -> int:
        """1 when a club could not be reconciled, else 3 when drift exceeds the threshold (cron)."""
        if self.failed:
            return 1
        return 3 if self.over_threshold else 0

    def as_json(self) -> Dict[str, Any]:
        return {"at": iso(self.at), "dry_run": self.dry_run, "threshold": self.threshold,
                "over_threshold": [c.chat_id for c in self.over_threshold],
                "clubs": [c.as_json() for c in self.clubs]}


def _member_states(doc: Optional[ClubDoc]) -> Dict[int, Tuple[Optional[str], Optional[str]]]:
    return {m["telegram_id"]: (m.get("status"), m.get("role")) for m in (doc or {}).get("members", [])
            if m.get("telegram_id") is not None}


def _app_only(doc: Optional[ClubDoc]) -> List[str]:
    """Members the app added itself (no Telegram id): reported apart, never compared or marked."""
    return [str(m.get("user_id") or "?") for m in (doc or {}).get("members", [])
            if m.get("telegram_id") is None and (m.get("status") or ACTIVE) == ACTIVE]


def reconcile_clubs(store: Store, gateway, chat: Optional[str], all_clubs: bool, at: datetime,
                    dry_run: bool = False, threshold: int = 0,
                    settings: Optional[Settings] = None, yes: bool = False) -> ReconcileOutcome:
    """Reconcile one club or every club; a club Telegram cannot answer for is
    reported with its error and the others still run (a cron job should see them all)."""
    if (chat is None) == (not all_clubs):
        raise InputError("reconcile: give either CHAT or --all")
    if threshold < 0:
        raise InputError("--threshold must be 0 or more")
    docs = store.all_clubs() if chat is None else [core.find_club(store, chat)]
    engine = core.make_engine(store, gateway, settings)
    out = ReconcileOutcome([], threshold, dry_run, at)
    for doc in docs:
        info = engine.club(doc["telegram_group_id"])
        row = ClubReconcile(doc["_id"], doc["telegram_group_id"], doc.get("name") or "")
        before = _member_states(doc)
        row.app_only = _app_only(doc)
        try:
            if info is None:  # removed by another process since the listing
                raise TgsyncError(f"club {doc['_id']} is no longer in the store")
            rep = engine.reconcile(info, at, dry_run=dry_run, allow_mass_departure=yes)
        except TgsyncError as exc:
            row.error = str(exc)
            row.reason = "not reconciled"
            out.clubs.append(row)
            if not all_clubs:
                raise
            continue
        row.total_members_telegram, row.total_members_ayda = rep.total_members_telegram, rep.total_members_ayda
        row.drift, row.listed, row.reason = rep.drift, rep.listed, rep.reason
        row.bot_present, row.bot_is_admin = rep.bot_present, rep.bot_is_admin
        row.held_back_left = rep.held_back_left
        if dry_run:
            row.would_add, row.would_mark_left = rep.added, rep.marked_left
        elif rep.listed:
            after = _member_states(store.club_by_id(info.club_id))
            for tid, (status, role) in after.items():
                old = before.get(tid)
                if old is None:
                    row.added.append(tid)
                    continue
                if old[0] == ACTIVE and status != ACTIVE:
                    row.marked_left.append(tid)
                elif old[0] != ACTIVE and status == ACTIVE:
                    row.reactivated.append(tid)
                if old[1] != role:
                    row.role_changed.append(tid)
        out.clubs.append(row)
    return out
