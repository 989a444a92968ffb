"""Insights commands: history, member, stats (the membership log read back)."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import typer
from rich.markup import escape
from typing_extensions import Annotated

from tgsync_cli.app import insights
from tgsync_cli.cli import render, render_insights
from tgsync_cli.cli.base import ConfigOpt, JsonOpt, StoreOpt, app, guarded, open_existing_store, settings_for
from tgsync_cli.core.rules import parse_iso
from tgsync_cli.runtime.wiring import utcnow


def _since(text: Optional[str], option: str = "--since") -> Optional[datetime]:
    if text is None:
        return None
    try:
        return parse_iso(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text[:40]!r} is not a date or time (e.g. 2024-12-01 or "
                                 "2024-12-01T10:00:00Z)", param_hint=option) from None


@app.command()
@guarded
def history(chat: Annotated[str, typer.Argument(help="chat id, @username or club_ id")],
            since: Annotated[Optional[str], typer.Option(
                "--since", help="only changes from this date/time (UTC)")] = None,
            json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Who joined, left, was kicked, promoted or demoted in a club, and how."""
    after = _since(since)
    with open_existing_store(settings_for(config, store)) as st:  # reads only: never creates one
        view = insights.club_history(st, chat, after)
    if json_out:
        render.print_json(view)
    else:
        render.console.print(render_insights.history_table(view))
        if view.get("requests"):
            render.console.print(render_insights.requests_table(view))


@app.command()
@guarded
def member(telegram_id: Annotated[int, typer.Argument(help="the person's Telegram user id")],
           json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """One person across all clubs: account, memberships and their log."""
    if telegram_id <= 0:
        raise typer.BadParameter("a Telegram user id is a positive number", param_hint="TELEGRAM_ID")
    with open_existing_store(settings_for(config, store)) as st:  # reads only: never creates one
        view = insights.member_view(st, telegram_id)
    if json_out:
        render.print_json(view)
    else:
        for part in render_insights.member_parts(view):
            render.console.print(part)


@app.command()
@guarded
def stats(chat: Annotated[str, typer.Argument(help="chat id, @username or club_ id")],
          weeks: Annotated[int, typer.Option("--weeks", min=1, max=520, help="how many ISO weeks, newest last")] = 12,
          json_out: JsonOpt = False,
          until: Annotated[Optional[str], typer.Option(
              "--until", help="the last week shown holds this date (default: today)")] = None,
          png: Annotated[Optional[str], typer.Option(
              "--png", help="also draw the chart into this PNG file (needs tgsync[plot])")] = None,
          config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Per week: joined, left, kicked, net, active writers, joins per invite link and inviter."""
    end = _since(until, "--until") or utcnow()
    with open_existing_store(settings_for(config, store)) as st:  # reads only: never creates one
        view = insights.club_stats(st, chat, weeks, end)
    if png:
        from tgsync_cli.cli.plot import stats_png  # matplotlib only when asked

        stats_png(view, png)
    if json_out:
        render.print_json(view)
        return
    for part in render_insights.stats_parts(view):
        render.console.print(part)
    if png:
        render.console.print(f"chart written to {escape(png)}")
