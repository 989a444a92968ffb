"""Rendering only: Rich tables for people, JSON/CSV for machines. No logic lives here.

Every text that came from Telegram or a file (names, titles, posts, notes) is a `Text`, never a
markup string: a member called `[reverse]Cyrus[/reverse]` or `Asel [/]` is shown as typed, and
cannot restyle the operator's screen or crash the table. Ids and times are what an operator
types next, so their columns never truncate; the other columns fold instead.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # imported when a bar is first drawn: most commands never draw one
    from rich.progress import Progress, TaskID

console = Console()
err_console = Console(stderr=True)

CELL_LIMIT = 300  # characters of one untrusted text shown in a cell; the rest is cut with "…"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(value: Any, limit: int = CELL_LIMIT) -> Text:
    """Untrusted text as a literal Rich Text (no markup, no emoji codes, terminal control
    characters shown as `\\x1b` rather than obeyed), bounded."""
    s = "" if value is None else str(value)
    s = s if len(s) <= limit else s[:limit] + "…"
    return Text(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s))


def line(*parts: Any, style: Optional[str] = None) -> Text:
    """One output line built from literal pieces (a `(text, style)` pair styles one piece)."""
    out = Text(style=style or "")
    for p in parts:
        if isinstance(p, tuple):
            out.append(plain(p[0]).plain, style=p[1])
        else:
            out.append_text(plain(p) if not isinstance(p, Text) else p)
    return out


def note(label: str, text: Any, style: str = "yellow") -> Text:
    return line((f"{label}: ", style), text)


def table(title: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]], keep: Sequence[str] = (),
          styles: Optional[List[Optional[str]]] = None, **kwargs) -> Table:
    """A table whose `keep` columns (ids, times) are never cut; cells are literal text."""
    rows = [[c if isinstance(c, Text) else plain(c) for c in r] for r in rows]
    t = Table(title=plain(title), **kwargs)
    for i, col in enumerate(columns):
        if col in keep:
            width = max([len(col)] + [r[i].cell_len for r in rows])
            t.add_column(col, no_wrap=True, min_width=width)
        else:
            t.add_column(col, overflow="fold")
    for n, r in enumerate(rows):
        t.add_row(*r, style=(styles[n] if styles else None))
    return t


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (never Rich markup), one document."""
    print(json.dumps(obj, ensure_ascii=False, default=str))


def roster_table(club: Dict[str, Any]) -> Table:
    rows, styles = [], []
    for m in club["members"]:
        name = m.get("first_name") or ""
        if m.get("username"):
            name += f" @{m['username']}"
        tid = "app only" if m.get("app_only") else m["telegram_id"]  # joined in the app, not on Telegram
        rows.append([tid, name, m.get("role") or "", m.get("status") or "", m.get("source") or "",
                     m.get("status_at") or ""])
        styles.append(None if m.get("status") == "active" else "dim")
    title = f"{club.get('name') or club['telegram_group_id']}  ({club['telegram_group_id']})"
    return table(title, ("telegram_id", "name", "role", "status", "source", "status_at"), rows,
                 keep=("telegram_id", "status_at"), styles=styles)


ROSTER_COLUMNS = ["telegram_id", "username", "first_name", "role", "status", "source", "joined_at",
                  "last_seen", "status_at", "app_only"]


def roster_csv(club: Dict[str, Any]) -> str:
    return _csv(ROSTER_COLUMNS, club["members"])


CLUB_COLUMNS = ["club_id", "telegram_group_id", "name", "active_members", "members_total",
                "bot_is_admin", "bot_present", "total_members_telegram", "drift", "last_sync",
                "join_policy"]


def clubs_csv(rows: List[Dict[str, Any]]) -> str:
    flat = [{**c, **{k: (c.get("sync") or {}).get(k) for k in
                     ("bot_is_admin", "bot_present", "total_members_telegram", "last_sync")}}
            for c in rows]
    return _csv(CLUB_COLUMNS, flat)


def _csv(cols: List[str], rows: Iterable[Dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: cell(r.get(k)) for k in cols})
    return buf.getvalue()


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a name or an app's role such as `=HYPERLINK(…)`
    would otherwise run as a formula, so text starting like one gets a leading `'`. Numbers (a
    chat id is negative) stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def clubs_table(rows: List[Dict[str, Any]]) -> Table:
    out = []
    for c in rows:
        s = c.get("sync") or {}
        bot = "admin" if s.get("bot_is_admin") else ("member" if s.get("bot_present") else "absent")
        out.append([c["club_id"], c["telegram_group_id"], c.get("name") or "", c["active_members"], bot,
                    _s(s.get("total_members_telegram")), _s(c.get("drift")), _s(s.get("last_sync"))])
    t = table("Clubs", ("club", "chat", "name", "active", "bot", "telegram", "drift", "last sync"),
              out, keep=("club", "chat", "last sync"))
    gated = [str(c["telegram_group_id"]) for c in rows if c.get("join_policy") == "roster"]
    if gated:
        # said below the table, not in a column: the table must stay readable at 80 columns
        t.caption = "join requests answered by the roster in: " + ", ".join(gated)
    return t


EMPTY_STORE = ("no clubs in {store} yet: add the bot to a group while `tgsync serve` runs, or run "
               "`tgsync import-admins CHAT` for a group it is already in (try `tgsync demo` first)")


def sent_table(sent: Iterable[Dict[str, Any]]) -> Table:
    rows = [[s["chat"], s["text"], "\n".join(s.get("buttons") or [])] for s in sent]
    return table("What the bot posted", ("to", "text", "button"), rows, keep=("to",))


def _s(v: Any) -> str:
    return "—" if v is None else str(v)


class ProgressBar:
    """A transient Rich progress bar on stderr, started at the first report (so an error that
    comes first is not drawn over) and only on a terminal (pipes and logs stay clean).
    `unit="bytes"` shows sizes (import-history reads the export); otherwise counts."""

    def __init__(self, label: str, unit: str = "items") -> None:
        self.label, self.unit = label, unit
        self._progress: Optional[Progress] = None
        self._task: Optional[TaskID] = None

    def update(self, done: int, total: Optional[int]) -> None:
        if self._progress is None:
            if not err_console.is_terminal:
                return
            from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress,
                                       TextColumn, TimeElapsedColumn)

            count = DownloadColumn() if self.unit == "bytes" else MofNCompleteColumn()
            self._progress = Progress(TextColumn(self.label), BarColumn(), count, TimeElapsedColumn(),
                                      console=err_console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=total)
        if self._task is not None:
            self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
