"""CSV for every table beyond roster and clubs: history, member, stats, reconcile. One row per
line of the table, every figure `--json` has, formula cells neutralised (render.csv_text)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

from tgsync_cli.cli.render import csv_text


def _state(s: Any, key: str) -> Any:
    return (s or {}).get(key)


def _pairs(d: Dict[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in sorted((d or {}).items()))


def history_csv(view: Dict[str, Any]) -> str:
    cols = ["at", "telegram_id", "name", "change", "from_status", "from_role", "to_status", "to_role",
            "source", "actor", "invite_link", "invited_by"]
    return csv_text(cols, ([e["at"], e["telegram_id"], e.get("name"), e["change"],
                            _state(e["from"], "status"), _state(e["from"], "role"),
                            _state(e["to"], "status"), _state(e["to"], "role"), e.get("source"),
                            e.get("actor"), e.get("invite_link"), e.get("invited_by")]
                           for e in view["entries"]))


MEMBERSHIP_CSV = ["club_id", "club_name", "telegram_group_id", "role", "status", "source", "joined_at",
                  "status_at", "last_seen", "invite_link", "invited_by"]


def member_csv(view: Dict[str, Any]) -> str:
    """One row per membership (a person's clubs); the log is in --json."""
    return csv_text(MEMBERSHIP_CSV, ([m.get(k) for k in MEMBERSHIP_CSV] for m in view["memberships"]))


def stats_csv(view: Dict[str, Any]) -> str:
    cols = ["week", "week_start", "joined", "left", "kicked", "net", "active_writers", "drift",
            "joins_by_link", "joins_by_inviter"]
    return csv_text(cols, ([w["week"], w.get("week_start"), w["joined"], w["left"], w["kicked"], w["net"],
                            w["active_writers"], w["drift"], _pairs(w["joins_by_link"]),
                            _pairs(w.get("joins_by_inviter") or {})] for w in view["weeks"]))


def _ids(ids: Iterable[int]) -> str:
    return " ".join(str(i) for i in ids)


def reconcile_csv(outcome) -> str:
    cols = ["club_id", "name", "chat_id", "total_members_telegram", "total_members_ayda", "drift", "listed",
            "added", "marked_left", "reactivated", "role_changed", "would_add", "would_mark_left",
            "held_back_left", "reason", "error"]
    rows: List[List[Any]] = [[c.club_id, c.name, c.chat_id, c.total_members_telegram, c.total_members_ayda,
                              c.drift, c.listed, _ids(c.added), _ids(c.marked_left), _ids(c.reactivated),
                              _ids(c.role_changed), c.would_add, c.would_mark_left, c.held_back_left,
                              c.reason, c.error] for c in outcome.clubs]
    return csv_text(cols, rows)
