"""Rendering of history, member and stats: tables and a terminal bar chart. Every text that
came from Telegram (names, titles, invite link names) goes through render.plain: people choose
their names, and a name must never restyle, clear or retitle the operator's terminal."""

from __future__ import annotations

from typing import Any, Dict, List

from rich.table import Table
from rich.text import Text

from tgsync_cli.cli.render import FitTable, line, plain, table

CHANGE_STYLE = {"joined": "green", "left": "yellow", "kicked": "red", "promoted": "cyan", "demoted": "cyan"}


def _state(s: Any) -> str:
    return "—" if not isinstance(s, dict) else f"{s.get('status')}/{s.get('role')}"


def _who(e: Dict[str, Any]) -> str:
    return f"{e['telegram_id']} {e.get('name') or ''}".strip()


def _title(view: Dict[str, Any], what: str) -> str:
    return f"{view.get('name') or ''} ({view['telegram_group_id']}) — {what}"


HISTORY_COLUMNS = ("time (UTC)", "member", "change", "from → to", "route", "by", "invite link")


def history_rows(view: Dict[str, Any]) -> List[List[Any]]:
    return [[e["at"], _who(e), e["change"], f"{_state(e.get('from'))} → {_state(e.get('to'))}",
             e.get("source") or "", "" if e.get("actor") in (None, e["telegram_id"]) else str(e["actor"]),
             str(e.get("invite_link") or "")] for e in view["entries"]]


def history_table(view: Dict[str, Any]) -> FitTable:
    rows = history_rows(view)
    for r in rows:
        r[2] = Text(r[2], style=CHANGE_STYLE.get(r[2], ""))
    caption = None
    if not view["entries"]:
        caption = "no changes recorded" + (f" since {view['since']}" if view.get("since") else "")
    return table(_title(view, "membership history"), HISTORY_COLUMNS, rows, keep=("time (UTC)",),
                 drop=("invite link", "by", "from → to", "route"), caption=caption,
                 free=("member", "invite link"))


MEMBERSHIP_COLUMNS = ("club", "chat", "role", "status", "source", "joined_at", "status_at")
LOG_COLUMNS = ("time (UTC)", "club", "change", "from → to", "route")


def membership_rows(view: Dict[str, Any]) -> List[List[Any]]:
    return [[m.get("club_name") or m["club_id"], m.get("telegram_group_id"), m.get("role"), m.get("status"),
             m.get("source"), m.get("joined_at") or "", m.get("status_at") or ""] for m in view["memberships"]]


def log_rows(view: Dict[str, Any]) -> List[List[Any]]:
    return [[e["at"], e.get("club") or e["club_id"], e["change"],
             f"{_state(e.get('from'))} → {_state(e.get('to'))}", e.get("source") or ""] for e in view["log"]]


def requests_table(view: Dict[str, Any]) -> FitTable:
    """Join requests answered and the app's requests, with who asked: every cell literal text."""
    rows = []
    for r in view.get("requests") or []:
        asked = "join" if r.get("origin") == "telegram" else str(r.get("action") or "")
        who = str(r.get("requested_by") if r.get("requested_by") is not None else "")
        if r.get("done_by") is not None and r.get("origin") == "telegram":
            who = f"{who}; answered by {r['done_by']}"
        outcome = str(r.get("outcome") or r.get("state") or "")
        if r.get("reason"):
            outcome = f"{outcome}: {r['reason']}"
        rows.append([r.get("at") or "", _who(r), asked, who, outcome])
    return table("Requests (join requests and the app's)", ("time (UTC)", "member", "asked", "by", "outcome"),
                 rows, keep=("time (UTC)",), drop=("by",), free=("member", "by", "outcome"))


def member_parts(view: Dict[str, Any]) -> List[Any]:
    acc = view.get("account") or {}
    fields = [[k, acc[k]] for k in ("_id", "username", "first_name", "last_name", "created_at", "dm_blocked")
              if k in acc] or [["account", "none (only memberships)"]]
    head = table(f"Telegram user {view['telegram_id']}", ("field", "value"), fields, show_header=False,
                 free=("value",))
    ms = table("Memberships", MEMBERSHIP_COLUMNS, membership_rows(view), keep=("chat", "status_at"),
               drop=("joined_at", "source", "chat", "status_at"), free=("club",))
    log = table("Log", LOG_COLUMNS, log_rows(view), keep=("time (UTC)",), drop=("from → to", "route"),
                free=("club",))
    return [head, ms, log]


STATS_COLUMNS = ("week of", "joined", "left", "kicked", "net", "writers", "drift", "joins by link",
                 "joins by inviter")


def stats_rows(view: Dict[str, Any]) -> List[List[Any]]:
    out = []
    for r in view["weeks"]:
        links = ", ".join(f"{k}: {v}" for k, v in sorted(r["joins_by_link"].items()))
        inviters = ", ".join(f"{_inviter(view, k)}: {v}" for k, v in sorted(r.get("joins_by_inviter", {}).items()))
        out.append([r.get("week_start") or r["week"], r["joined"], r["left"], r["kicked"], f"{r['net']:+d}",
                    r["active_writers"], "—" if r["drift"] is None else r["drift"], links, inviters])
    return out


def _inviter(view: Dict[str, Any], key: str) -> str:
    name = (view.get("inviters") or {}).get(key)
    return f"{key} {name}" if name else key


def stats_parts(view: Dict[str, Any]) -> List[Any]:
    numbers = dict.fromkeys(("joined", "left", "kicked", "net", "writers", "drift"), "right")
    t = table(_title(view, "per week"), STATS_COLUMNS, stats_rows(view), keep=("week of",),
              justify=numbers, drop=("joins by inviter", "joins by link", "drift"),
              free=("joins by link", "joins by inviter"))
    parts: List[Any] = [t, chart(view["weeks"])]
    joins = joins_rows(view)
    if joins:
        parts.append(table("Joins in these weeks by invite link and by inviter", ("by", "who", "joins"),
                           joins, justify={"joins": "right"}, free=("who",), drop=()))
    rows = view["weeks"]
    if any(r.get("requests_approved") or r.get("requests_declined") or r.get("requests_pending")
           for r in rows):
        parts.append(table("join requests per week", ("week of", "approved", "declined", "pending"),
                           [[r.get("week_start") or r["week"], r.get("requests_approved", 0),
                             r.get("requests_declined", 0), r.get("requests_pending", 0)] for r in rows],
                           keep=("week of",), justify=dict.fromkeys(("approved", "declined", "pending"), "right"),
                           drop=()))
    if view.get("quiet_hint"):
        parts.append(line(("note: ", "yellow"), view["quiet_hint"]))
    return parts


def joins_rows(view: Dict[str, Any]) -> List[List[Any]]:
    totals = view.get("totals") or {}
    links = sorted((totals.get("joins_by_link") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    people = sorted((totals.get("joins_by_inviter") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    return ([["invite link", k, n] for k, n in links]
            + [["inviter", _inviter(view, k), n] for k, n in people])


def chart(rows: List[Dict[str, Any]], width: int = 40) -> Table:
    """Net change and active writers per week as bars: growth at a glance in any terminal."""
    peak = max([abs(r["net"]) for r in rows] + [r["active_writers"] for r in rows] + [1])
    t = Table(title="net change (green/red) and active writers (blue)", show_header=False, box=None,
              min_width=60)
    t.add_column("week", no_wrap=True)
    t.add_column("bars")
    for r in rows:
        n = round(abs(r["net"]) / peak * width)
        w = round(r["active_writers"] / peak * width)
        bars = Text()
        bars.append("█" * n, style="green" if r["net"] >= 0 else "red")
        bars.append(f" {r['net']:+d}\n")
        bars.append("▆" * w, style="blue")
        bars.append(f" {r['active_writers']}")
        t.add_row(plain(r.get("week_start") or r["week"]), bars)
    return t
