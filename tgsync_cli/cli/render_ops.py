"""Rendering for the operator commands: Rich tables for people. No logic lives here.

Club names, chat titles and error texts reach these tables from Telegram or the store, so every
cell is literal text (see render.plain); ids never truncate.
"""

from __future__ import annotations

from typing import Iterable, List

from rich.table import Table
from rich.text import Text

from tgsync_cli.cli.render import FitTable, lines_text, plain, table

LEVEL_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def _s(v) -> str:
    return "—" if v is None else str(v)


def _ids(ids: Iterable[int], limit: int = 8) -> str:
    ids = list(ids)
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" … (+{len(ids) - limit})" if len(ids) > limit else "")


def reconcile_table(outcome) -> FitTable:
    title = "Reconcile" + (" (dry run: nothing written)" if outcome.dry_run else "")
    rows = []
    for c in outcome.clubs:
        changes: List[str] = []
        if outcome.dry_run:
            if c.would_add or c.would_mark_left:
                changes.append(f"would add {c.would_add}, mark left {c.would_mark_left}")
        else:
            for label, ids in (("added", c.added), ("marked left", c.marked_left),
                               ("active again", c.reactivated), ("role changed", c.role_changed)):
                if ids:
                    changes.append(f"{label} {len(ids)}: {_ids(ids)}")
        if c.app_only:
            changes.append(f"in the app, not on Telegram {len(c.app_only)}: {_ids(c.app_only)}")
        over = c.drift is not None and c.drift > outcome.threshold
        drift = Text(_s(c.drift), style="bold red" if over else "")
        why = c.error if c.error else c.reason
        rows.append([c.name or c.club_id, c.chat_id, _s(c.total_members_telegram),
                     _s(c.total_members_ayda), drift, lines_text(changes or ["none"]), why])
    return table(title, ("club", "chat", "telegram", "ayda", "drift", "changes", "why"),
                 rows, keep=("chat",), drop=("why", "telegram", "ayda"), free=("club",),
                 justify={"telegram": "right", "ayda": "right", "drift": "right"},
                 caption="telegram: members Telegram counts (incl. the bot); ayda: active in the roster")


def history_summary(rep) -> Table:
    """Every figure `--json` has, so the table never undercounts what was written."""
    t = Table(title=plain(f"History import into {rep.chat_id} ({rep.club_id})"
                          + ("" if rep.verified else " (not verified)")))
    t.add_column("")
    t.add_column("count", justify="right")
    rows = [("messages read", rep.messages_read, None), ("candidates", rep.candidates, None),
            ("added", rep.added, None),
            ("  of them recorded as left (their last evidence is leaving)", rep.recorded_left, "dim"),
            ("already known", rep.already_known, None), ("active again", rep.reactivated, None),
            ("refused by Telegram", rep.refused, None), ("skipped", rep.skipped, None)]
    if rep.club_created:
        rows.insert(0, ("organizers (admins of the new club)", rep.organizers, None))
    for label, n, style in rows:
        t.add_row(label, str(n), style=style)
    for reason, n in rep.skip_reasons.items():
        t.add_row(plain(f"  skipped: {reason}"), str(n), style="dim")
    return t


def doctor_table(checks) -> FitTable:
    rows = [[c.name, Text(c.level, style=LEVEL_STYLE.get(c.level, "")), c.detail, c.fix] for c in checks]
    return table("tgsync doctor", ("check", "status", "detail", "fix"), rows, keep=("status",),
                 drop=(), free=("check", "detail", "fix"))


def forget_lines(rep, preview: bool = False) -> List[str]:
    verb = "will remove" if preview else "removed"
    if not rep.found:
        return [f"nothing stored about telegram id {rep.telegram_id}"]
    lines = [f"{verb} for telegram id {rep.telegram_id}:"]
    lines.append(f"  account: {rep.accounts}")
    if getattr(rep, "app_account_kept", None):
        lines.append(f"  the app still has an account for them ({rep.app_account_kept}): its Telegram "
                     "fields are removed, the app's kept")
    clubs = ", ".join(f"{c['name'] or c['club_id']} ({c['telegram_group_id']})" for c in rep.clubs)
    lines.append(f"  memberships: {len(rep.clubs)}" + (f" — {clubs}" if clubs else ""))
    lines.append(f"  departure records: {rep.departures}")
    if rep.created_by_cleared:
        lines.append(f"  clubs no longer naming them as creator: {rep.created_by_cleared}")
    if rep.spooled_events:
        lines.append(f"  events waiting in the serve spool: {rep.spooled_events}")
    if rep.session_entries:
        lines.append(f"  entries in the bot's Telegram session: {rep.session_entries}")
    if not preview:
        lines.append(f"  cache entries: {rep.cache_entries}")
    return lines
