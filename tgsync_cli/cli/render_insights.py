"""Rendering of history, member and stats: Rich tables and a terminal bar chart. Every text that
came from Telegram or the app's database (names, titles, invite link names, the app's roles,
statuses and routes) is shown literally and bounded: people choose their names."""

from __future__ import annotations

from typing import Any, Dict, List

from rich.table import Table
from rich.text import Text

from tgsync_cli.cli.render import plain

CHANGE_STYLE = {"joined": "green", "left": "yellow", "kicked": "red", "promoted": "cyan", "demoted": "cyan"}


def _state(s: Any) -> str:
    return "—" if not isinstance(s, dict) else f"{s.get('status')}/{s.get('role')}"


def _change(e: Dict[str, Any]) -> Text:
    return plain(f"{_state(e.get('from'))} → {_state(e.get('to'))}")


def _who(e: Dict[str, Any]) -> Text:
    return plain(f"{e['telegram_id']} {e.get('name') or ''}".strip())


def history_table(view: Dict[str, Any]) -> Table:
    title = plain(f"{view.get('name') or ''}", 80) + f" ({view['telegram_group_id']}) — membership history"
    t = Table(title=title)
    t.add_column("time (UTC)", no_wrap=True)
    t.add_column("member", overflow="fold")
    t.add_column("change")
    t.add_column("from → to", overflow="fold")
    t.add_column("route")
    t.add_column("by", no_wrap=True)
    t.add_column("invite link", overflow="fold")
    for e in view["entries"]:
        kind = e["change"]
        t.add_row(e["at"], _who(e), Text(kind, style=CHANGE_STYLE.get(kind, "")),
                  _change(e), plain(e.get("source")),
                  "" if e.get("actor") in (None, e["telegram_id"]) else plain(e["actor"]),
                  plain(e.get("invite_link")))
    if not view["entries"]:
        t.caption = "no changes recorded" + (f" since {view['since']}" if view.get("since") else "")
    return t


def requests_table(view: Dict[str, Any]) -> Table:
    """Join requests answered and the app's requests, with who asked: the app's text shown literally."""
    t = Table(title="Requests (join requests and the app's)")
    t.add_column("time (UTC)", no_wrap=True)
    t.add_column("member", overflow="fold")
    t.add_column("asked", overflow="fold")
    t.add_column("by", overflow="fold")
    t.add_column("outcome", overflow="fold")
    for r in view.get("requests") or []:
        asked = "join" if r.get("origin") == "telegram" else str(r.get("action") or "")
        who = str(r.get("requested_by") if r.get("requested_by") is not None else "")
        if r.get("done_by") is not None and r.get("origin") == "telegram":
            who = f"{who}; answered by {r['done_by']}"
        outcome = r.get("outcome") or r.get("state") or ""
        if r.get("reason"):
            outcome = f"{outcome}: {r['reason']}"
        t.add_row(r.get("at") or "", _who(r), asked, plain(who), plain(outcome))
    return t


def member_parts(view: Dict[str, Any]) -> List[Any]:
    acc = view.get("account") or {}
    head = Table(title=f"Telegram user {view['telegram_id']}", show_header=False)
    head.add_column("field")
    head.add_column("value", overflow="fold")
    for k in ("_id", "username", "first_name", "last_name", "created_at", "dm_blocked"):
        if k in acc:
            head.add_row(k, plain(acc[k]))
    if not acc:
        head.add_row("account", "none (only memberships)")
    ms = Table(title="Memberships")
    for col in ("club", "chat", "role", "status", "source", "joined_at", "status_at"):
        ms.add_column(col, no_wrap=col in ("chat", "joined_at", "status_at"))
    for m in view["memberships"]:
        ms.add_row(plain(m.get("club_name") or m["club_id"]), str(m.get("telegram_group_id")), plain(m.get("role")),
                   plain(m.get("status")), plain(m.get("source")), plain(m.get("joined_at")), plain(m.get("status_at")))
    log = Table(title="Log")
    for col in ("time (UTC)", "club", "change", "from → to", "route"):
        log.add_column(col, no_wrap=col == "time (UTC)")
    for e in view["log"]:
        log.add_row(e["at"], plain(e.get("club") or e["club_id"]), plain(e["change"]),
                    _change(e), plain(e.get("source")))
    return [head, ms, log]


def stats_parts(view: Dict[str, Any]) -> List[Any]:
    rows = view["weeks"]
    t = Table(title=plain(f"{view.get('name') or ''}", 80) + f" ({view['telegram_group_id']}) — per week")
    for col in ("week", "joined", "left", "kicked", "net", "writers", "drift", "joins by link"):
        t.add_column(col, justify="right" if col not in ("week", "joins by link") else "left",
                     no_wrap=col == "week")
    for r in rows:
        links = plain(", ".join(f"{k}: {v}" for k, v in sorted(r["joins_by_link"].items())))
        t.add_row(r["week"], str(r["joined"]), str(r["left"]), str(r["kicked"]), f"{r['net']:+d}",
                  str(r["active_writers"]), "—" if r["drift"] is None else str(r["drift"]), links)
    parts: List[Any] = [t]
    if any(r.get("requests_approved") or r.get("requests_declined") or r.get("requests_pending")
           for r in rows):
        jr = Table(title="join requests per week")
        for col in ("week", "approved", "declined", "pending at week's end"):
            jr.add_column(col, justify="left" if col == "week" else "right", no_wrap=col == "week")
        for r in rows:
            jr.add_row(r["week"], str(r.get("requests_approved", 0)), str(r.get("requests_declined", 0)),
                       str(r.get("requests_pending", 0)))
        parts.append(jr)
    return [*parts, chart(rows)]


def chart(rows: List[Dict[str, Any]], width: int = 40) -> Table:
    """Net change and active writers per week as bars: growth at a glance in any terminal."""
    peak = max([abs(r["net"]) for r in rows] + [r["active_writers"] for r in rows] + [1])
    t = Table(title="net change (green/red) and active writers (blue)", show_header=False, box=None)
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
        t.add_row(r["week"], bars)
    return t
