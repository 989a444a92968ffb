"""history, member and stats: the membership log read back for organizers and operators."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional

from tgsync_cli.core.documents import ClubDoc
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.core.insights import WeekStats, change_kind, count_join_requests, weekly_stats
from tgsync_cli.core.rules import iso
from tgsync_cli.runtime.wiring import _plain, find_club


def _entry_view(e: Dict[str, Any], names: Dict[int, str]) -> Dict[str, Any]:
    v = {k: _plain(e.get(k)) for k in ("at", "club_id", "telegram_id", "from", "to", "source", "actor",
                                       "invite_link", "invited_by")}
    v["change"] = change_kind(e) or "changed"
    v["name"] = names.get(e["telegram_id"])
    return v


def _names(doc: ClubDoc) -> Dict[int, str]:
    return {m["telegram_id"]: _display(m) for m in doc.get("members", [])}


def _display(m: Mapping[str, Any]) -> str:
    name = m.get("first_name") or ""
    if m.get("username"):
        name = f"{name} @{m['username']}".strip()
    return name


def club_history(store, chat: str, since: Optional[datetime] = None) -> Dict[str, Any]:
    doc = find_club(store, chat)
    names = _names(doc)
    entries = store.membership_log(club_id=doc["_id"], since=since)
    return {"club_id": doc["_id"], "telegram_group_id": doc["telegram_group_id"], "name": doc.get("name"),
            "since": iso(since) if since else None,
            "entries": [_entry_view(e, names) for e in entries],
            "requests": [_request_view(r, names) for r in store.requests_of(doc["_id"], since=since)]}


def _request_view(r: Dict[str, Any], names: Dict[int, str]) -> Dict[str, Any]:
    """A request as history shows it: what was asked, by whom, and what came of it."""
    v = {k: _plain(r.get(k)) for k in ("at", "telegram_id", "action", "requested_by", "origin", "state",
                                       "outcome", "reason", "done_at", "done_by")}
    v["name"] = names.get(r["telegram_id"]) if r.get("telegram_id") is not None else None
    return v


def member_view(store, telegram_id: int) -> Dict[str, Any]:
    user = store.user_by_telegram_id(telegram_id)
    memberships = store.memberships_of(telegram_id)
    if user is None and not memberships:
        raise TgsyncError(f"no account or membership for telegram id {telegram_id} in {store.uri_label}")
    clubs = {m["club_id"]: m for m in memberships}
    names = {telegram_id: _display(user or (memberships[0] if memberships else {}))}
    log = [_entry_view(e, names) for e in store.membership_log(telegram_id=telegram_id)]
    for e in log:
        e["club"] = (clubs.get(e["club_id"]) or {}).get("club_name")
    keys = ("club_id", "club_name", "telegram_group_id", "role", "status", "source", "joined_at",
            "status_at", "last_seen", "invite_link", "invited_by")
    return {"telegram_id": telegram_id,
            "account": _plain(dict(user)) if user else None,
            "memberships": [{k: _plain(m.get(k)) for k in keys} for m in memberships],
            "log": log}


def club_stats(store, chat: str, weeks: int, now: datetime) -> Dict[str, Any]:
    doc = find_club(store, chat)
    rows: List[WeekStats] = weekly_stats(store.membership_log(club_id=doc["_id"]),
                                         store.writers_by_week(doc["_id"]),
                                         store.reconcile_history(doc["_id"]), weeks, now)
    count_join_requests(rows, store.requests_of(doc["_id"]))
    return {"club_id": doc["_id"], "telegram_group_id": doc["telegram_group_id"], "name": doc.get("name"),
            "weeks": [r.as_json() for r in rows]}
