"""The organizers' word on who may be in the group: `policy` and `remove`."""

from __future__ import annotations

import getpass
from typing import Optional

import typer
from typing_extensions import Annotated

from tgsync_cli.cli import render
from tgsync_cli.cli.args import chat_callback, telegram_id_callback
from tgsync_cli.cli.base import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    app,
    guarded,
    lazy_module,
    open_existing_store,
    settings_for,
)

requests_ops = lazy_module("tgsync_cli.ops.requests")
core = lazy_module("tgsync_cli.runtime.wiring")


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError, ImportError):  # no user name here: still an organizer at the console
        return "cli"


@app.command()
@guarded
def policy(chat: Annotated[str, typer.Argument(help="chat id (-100…), @username or club_ id",
                                               callback=chat_callback)],
           join: Annotated[Optional[str], typer.Option(
               "--join", help="open: admins answer join requests; roster: the club's roster does")] = None,
           decline_after: Annotated[Optional[int], typer.Option(
               "--decline-after", min=1, metavar="DAYS",
               help="decline join requests left unanswered this many days (off by default)")] = None,
           json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Set a club's join policy (without --join: show it)."""
    if join is not None and join not in ("open", "roster"):
        raise typer.BadParameter(f"{join!r}: expected open or roster", param_hint="--join")
    if join is None and decline_after is not None:
        raise typer.BadParameter("--decline-after needs --join", param_hint="--decline-after")
    settings = settings_for(config, store)
    with open_existing_store(settings) as st:
        rep = requests_ops.set_join_policy(st, chat, join, decline_after)
    if json_out:
        render.print_json(rep.as_json())
        return
    after = (f", join requests declined after {rep.decline_after_days} days"
             if rep.decline_after_days else "")
    render.console.print(render.line(
        f"{rep.name or rep.club_id} ({rep.chat_id}): join policy {rep.join}{after}"), highlight=False)


@app.command()
@guarded
def remove(chat: Annotated[str, typer.Argument(help="chat id (-100…), @username or club_ id",
                                               callback=chat_callback)],
           telegram_id: Annotated[int, typer.Argument(help="the person's Telegram user id",
                                                      callback=telegram_id_callback)],
           ban: Annotated[bool, typer.Option("--ban", help="keep them out (no rejoining)")] = False,
           force: Annotated[bool, typer.Option("--force", help="an admin of the group too")] = False,
           yes: Annotated[bool, typer.Option(
               "--yes", help="even when over 20 % of the club would be removed today")] = False,
           by: Annotated[Optional[str], typer.Option("--by", help="who asks (default: cli:USER)")] = None,
           json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Ask the running serve to remove (or --ban) a member: the same request the app writes."""
    settings = settings_for(config, store)
    with open_existing_store(settings) as st:
        req = requests_ops.request_removal(st, chat, telegram_id, ban=ban, force=force, yes=yes,
                                           requested_by=(by or _who())[:200], now=core.utcnow())
    if json_out:
        render.print_json({"request": str(req["_id"]), "club_id": req["club_id"],
                           "telegram_id": req["telegram_id"], "action": req["action"],
                           "state": req["state"]})
        return
    render.console.print(render.line(
        f"request {req['_id']}: {req['action']} {telegram_id} — serve applies it within seconds"),
        highlight=False)
