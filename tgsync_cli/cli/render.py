"""Rendering only: Rich tables for people, JSON/CSV for machines. No logic lives here.

Every text that came from Telegram or a file (names, titles, posts, notes, invite links) goes
through `plain`: a member called `[reverse]Cyrus[/reverse]`, `:smile:` or `\\x1b[2J` is shown as
typed, cannot restyle, clear or retitle the operator's screen, and a right-to-left override
cannot reorder the line. Ids and times are what an operator types next, so their columns never
truncate; the other columns wrap at word boundaries, and when the terminal is too narrow for
every column's longest word the least useful columns are left out and the table says which.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tgsync_cli.core.text import CELL_LIMIT, safe_text  # noqa: F401 (CELL_LIMIT: callers' bound)
if TYPE_CHECKING:  # imported when a bar is first drawn: most commands never draw one
    from rich.progress import Progress, TaskID

console = Console()
err_console = Console(stderr=True)

# a single word longer than this may fold: in a column of what people typed (names, titles,
# post texts), and in any other column (our own words: routes, statuses) past the second figure
_WORD_CAP = 16
_OUR_WORD_CAP = 24


def plain(value: Any, limit: int = CELL_LIMIT) -> Text:
    """Untrusted text as a literal Rich Text (no markup, no emoji codes, terminal control
    characters shown as `\\x1b` rather than obeyed), bounded."""
    return Text(safe_text(value, limit))


def lines_text(parts: Iterable[Any]) -> Text:
    """Several literal values as one multi-line cell: our newlines, never a name's."""
    return Text("\n").join(plain(p) for p in parts)


def line(*parts: Any, style: Optional[str] = None) -> Text:
    """One output line built from literal pieces (a `(text, style)` pair styles one piece)."""
    out = Text(style=style or "")
    for p in parts:
        if isinstance(p, tuple):
            out.append(safe_text(p[0]), style=p[1])
        else:
            out.append_text(plain(p) if not isinstance(p, Text) else p)
    return out


def note(label: str, text: Any, style: str = "yellow") -> Text:
    return line((f"{label}: ", style), text)


class FitTable:
    """A table laid out for the width it is printed at: every column keeps its header and its
    longest word (ids and times whole); when they do not all fit, the columns named in `drop`
    (least useful first) are left out and the caption says which."""

    def __init__(self, title: Any, columns: Sequence[str], rows: List[List[Text]], keep: Sequence[str],
                 drop: Sequence[str], styles: Optional[List[Optional[str]]], justify: Dict[str, str],
                 caption: Optional[str], kwargs: Dict[str, Any], free: Sequence[str] = ()) -> None:
        self.title, self.columns, self.rows = title, list(columns), rows
        self.keep, self.drop, self.styles, self.justify = set(keep), list(drop), styles, justify
        self.caption, self.kwargs, self.free = caption, kwargs, set(free)

    def layout(self, width: int) -> Table:
        shown = list(range(len(self.columns)))
        need = {i: self._need(i) for i in shown}
        natural = {i: self._natural(i) for i in shown}
        dropped: List[str] = []
        for name in self.drop:
            if self._fits(shown, need, width):
                break
            if name in self.columns and len(shown) > 1:
                shown.remove(self.columns.index(name))
                dropped.append(name)
        dropped.sort(key=self.columns.index)  # named in the table's own order
        t = self._table(shown, dropped)
        room = width - self._overhead(t)
        widths = _distribute({i: need[i] for i in shown}, natural, room)
        for col, i in zip(t.columns, shown, strict=True):
            if self.columns[i] in self.keep:
                col.min_width = need[i]
            else:
                col.width = widths[i]
        return t

    def _table(self, shown: List[int], dropped: List[str]) -> Table:
        caption = self.caption
        if dropped:
            more = f"not shown at this width: {', '.join(dropped)} (a wider terminal, --json or --csv show them)"
            caption = f"{caption}\n{more}" if caption else more
        t = Table(title=plain(self.title) if self.title is not None else None,
                  caption=Text(caption) if caption else None, **self.kwargs)
        for i in shown:
            name = self.columns[i]
            t.add_column(name, no_wrap=name in self.keep, overflow="fold",
                         justify=self.justify.get(name, "left"))  # type: ignore[arg-type]
        for n, r in enumerate(self.rows):
            t.add_row(*[r[i] for i in shown], style=(self.styles[n] if self.styles else None))
        return t

    def _fits(self, shown: List[int], need: Dict[int, int], width: int) -> bool:
        t = self._table(shown, [])
        return sum(need[i] for i in shown) + self._overhead(t) <= width

    @staticmethod
    def _overhead(t: Table) -> int:
        return t._extra_width + sum(t._get_padding_width(i) for i in range(len(t.columns)))

    def _cells(self, i: int) -> List[str]:
        return [self.columns[i]] + [r[i].plain for r in self.rows]

    def _natural(self, i: int) -> int:
        return max(len(ln) for c in self._cells(i) for ln in (c.split("\n") or [""]))

    def _need(self, i: int) -> int:
        if self.columns[i] in self.keep:
            return self._natural(i)
        longest = max((len(w) for c in self._cells(i)[1:] for w in c.split()), default=0)
        cap = _WORD_CAP if self.columns[i] in self.free else _OUR_WORD_CAP
        return max(len(self.columns[i]), min(longest, cap))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.layout(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.layout(options.max_width))


def _distribute(need: Dict[int, int], natural: Dict[int, int], room: int) -> Dict[int, int]:
    """Each column its need; what is left is shared fairly: a column that needs less than its
    share to be whole gets exactly that, the rest split what remains evenly."""
    widths = dict(need)
    spare = room - sum(widths.values())
    waiting = sorted((i for i in widths if natural[i] > widths[i]), key=lambda k: natural[k] - widths[k])
    while waiting and spare > 0:
        share = spare // len(waiting)
        first = waiting[0]
        gap = natural[first] - widths[first]
        if gap <= share:
            widths[first] += gap
            spare -= gap
            waiting.pop(0)
            continue
        for n, i in enumerate(waiting):
            widths[i] += share + (1 if n < spare - share * len(waiting) else 0)
        break
    return widths


def table(title: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]], keep: Sequence[str] = (),
          styles: Optional[List[Optional[str]]] = None, drop: Optional[Sequence[str]] = None,
          justify: Optional[Dict[str, str]] = None, caption: Optional[str] = None,
          free: Sequence[str] = (), **kwargs: Any) -> FitTable:
    """A table whose `keep` columns (ids, times) are never cut; cells are literal text. `drop`
    lists the columns to leave out, least useful first, when the terminal is narrow (default:
    the others from the right, the first column last). `free` names the columns of what people
    typed, where a very long word may fold rather than push other columns out."""
    cells = [[c if isinstance(c, Text) else plain(c) for c in r] for r in rows]
    if drop is None:
        drop = [c for c in reversed(columns[1:]) if c not in keep]
    return FitTable(title, columns, cells, keep, drop, styles, justify or {}, caption, kwargs, free)


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (never Rich markup), one document."""
    print(json.dumps(obj, ensure_ascii=False, default=str))


def print_csv(text: str) -> None:
    print(text, end="")


def roster_table(club: Dict[str, Any]) -> FitTable:
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
                 keep=("telegram_id", "status_at"), styles=styles, drop=("source", "status_at", "role"),
                 free=("name",))


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


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula (`=HYPERLINK(…)`, `@SUM(…)`, `+1+1`, a leading
    tab or CR) gets a leading `'`, so it opens as the text it is; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def csv_text(cols: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Every CSV tgsync writes: a header, then the rows with formula cells neutralised."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([csv_cell(v) for v in r])
    return buf.getvalue()


def _csv(cols: List[str], rows: Iterable[Dict[str, Any]]) -> str:
    return csv_text(cols, ([r.get(k) for k in cols] for r in rows))


def clubs_table(rows: List[Dict[str, Any]]) -> FitTable:
    out = []
    for c in rows:
        s = c.get("sync") or {}
        bot = "admin" if s.get("bot_is_admin") else ("member" if s.get("bot_present") else "absent")
        out.append([c["club_id"], c["telegram_group_id"], c.get("name") or "", c["active_members"], bot,
                    _s(s.get("total_members_telegram")), _s(c.get("drift")), _s(s.get("last_sync"))])
    gated = [str(c["telegram_group_id"]) for c in rows if c.get("join_policy") == "roster"]
    # said below the table, not in a column: the table must stay readable at 80 columns
    caption = ("join requests answered by the roster in: " + ", ".join(gated)) if gated else None
    return table("Clubs", ("club", "chat", "name", "active", "bot", "telegram", "drift", "last sync"),
                 out, keep=("club", "chat", "last sync"),
                 drop=("last sync", "telegram", "drift", "bot", "club"), free=("name",), caption=caption)


EMPTY_STORE = ("no clubs in {store} yet: add the bot to a group while `tgsync serve` runs, or run "
               "`tgsync import-admins CHAT` for a group it is already in (try `tgsync demo` first)")


def sent_table(sent: Iterable[Dict[str, Any]]) -> FitTable:
    rows = [[lines_text([s.get("recipient") or "", s["chat"]]), lines_text(str(s["text"]).split("\n")),
             lines_text(s.get("buttons") or [])] for s in sent]
    return table("What the bot posted", ("to", "text", "button"), rows, drop=("button",),
                 free=("to", "text", "button"))


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
            if not err_console.is_terminal or err_console.quiet:
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
