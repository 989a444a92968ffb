"""Rendering only: Rich tables for people, JSON/CSV for machines. No logic lives here."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Dict, Iterable, List

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (never Rich markup), one document."""
    print(json.dumps(obj, ensure_ascii=False, default=str))


def roster_table(club: Dict[str, Any]) -> Table:
    t = Table(title=f"{club.get('name') or club['telegram_group_id']}  ({club['telegram_group_id']})")
    for col in ("telegram_id", "name", "role", "status", "source", "status_at"):
        t.add_column(col)
    for m in club["members"]:
        name = m.get("first_name") or ""
        if m.get("username"):
            name += f" @{m['username']}"
        style = None if m["status"] == "active" else "dim"
        t.add_row(str(m["telegram_id"]), name, m["role"], m["status"], m["source"],
                  str(m.get("status_at") or ""), style=style)
    return t


def roster_csv(club: Dict[str, Any]) -> str:
    buf = io.StringIO()
    cols = ["telegram_id", "username", "first_name", "role", "status", "source", "joined_at",
            "last_seen", "status_at"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for m in club["members"]:
        w.writerow({k: ("" if m.get(k) is None else m.get(k)) for k in cols})
    return buf.getvalue()


def clubs_table(rows: List[Dict[str, Any]]) -> Table:
    t = Table(title="Clubs")
    for col in ("club", "chat", "name", "active", "bot", "telegram", "drift", "last sync"):
        t.add_column(col)
    for c in rows:
        s = c.get("sync") or {}
        bot = "admin" if s.get("bot_is_admin") else ("member" if s.get("bot_present") else "absent")
        t.add_row(c["club_id"], str(c["telegram_group_id"]), c.get("name") or "",
                  str(c["active_members"]), bot, _s(s.get("total_members_telegram")),
                  _s(c.get("drift")), _s(s.get("last_sync")))
    return t


def sent_table(sent: Iterable[Dict[str, Any]]) -> Table:
    t = Table(title="What the bot posted")
    t.add_column("to")
    t.add_column("text")
    t.add_column("button")
    for s in sent:
        t.add_row(str(s["chat"]), s["text"], "\n".join(s.get("buttons") or []))
    return t


def _s(v: Any) -> str:
    return "—" if v is None else str(v)
