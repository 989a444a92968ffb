"""Operator commands: reconcile, import-history, doctor, forget."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from tgsync_cli.cli import render, render_ops
from tgsync_cli.cli.args import chat_callback, history_chat_callback, telegram_id_callback
from tgsync_cli.cli.base import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    app,
    guarded,
    lazy_module,
    open_existing_store,
    open_store_checked,
    settings_for,
)
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.runtime.pipeline import SPOOL_NAME

ops = lazy_module("tgsync_cli.ops")
core = lazy_module("tgsync_cli.runtime.wiring")


def _live_gateway(settings):
    from tgsync_cli.ops import gateway_for  # pyrogram only when Telegram is really asked

    return gateway_for(settings)


# settings → context manager yielding a TelegramGateway. Tests replace it with the simulator's
# gateway; nothing else should.
GATEWAY_FACTORY = _live_gateway


@app.command()
@guarded
def reconcile(chat: Annotated[Optional[str], typer.Argument(help="chat id (-100…), @username or club_ id",
                                                         callback=chat_callback)] = None,
              all_clubs: Annotated[bool, typer.Option("--all", help="every club in the store")] = False,
              threshold: Annotated[Optional[int], typer.Option(
                  "--threshold", min=0,
                  help="exit 3 when drift exceeds this (default sync.reconcile_threshold)")] = None,
              dry_run: Annotated[bool, typer.Option("--dry-run", help="compare only, write nothing")] = False,
              yes: Annotated[bool, typer.Option(
                  "--yes", help="apply even when over 20 % of a club would be marked left")] = False,
              json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Compare each club with Telegram, fix the roster where the bot may list it (exit 3 on drift)."""
    if chat is None and not all_clubs:
        raise typer.BadParameter("give a CHAT, or --all for every club", param_hint="CHAT")
    if chat is not None and all_clubs:
        raise typer.BadParameter(f"{chat} and --all: give one of them", param_hint="CHAT")
    settings = settings_for(config, store)
    limit = settings.sync.reconcile_threshold if threshold is None else threshold
    with open_existing_store(settings) as st:  # it fixes clubs; it never invents a store
        with GATEWAY_FACTORY(settings) as gw:
            outcome = ops.reconcile_clubs(st, gw, chat, all_clubs, core.utcnow(), dry_run, limit, settings,
                                          yes=yes)
    if json_out:
        render.print_json(outcome.as_json())
    else:
        render.console.print(render_ops.reconcile_table(outcome))
    for c in outcome.failed:
        render.err_console.print(render.line(f"error: {c.chat_id}: {c.error}"), highlight=False)
    raise typer.Exit(outcome.exit_code)


@app.command("import-history")
@guarded
def import_history(file: Annotated[str, typer.Argument(help="Telegram Desktop export result.json")],
                   chat: Annotated[str, typer.Option("--chat", callback=history_chat_callback,
                                                     help="the group's chat id (-100…), @username or club_ id")],
                   no_verify: Annotated[bool, typer.Option(
                       "--no-verify", help="take the last evidence as status; do not ask Telegram")] = False,
                   json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Add everyone who wrote in or joined the group, from a Telegram Desktop export.

    Telegram confirms each person is still a member (--no-verify: take the export's last word)."""
    settings = settings_for(config, store)
    bar = render.ProgressBar("reading the export", unit="bytes")
    try:
        with open_store_checked(settings) as st:
            rep = ops.import_history_file(st, file, chat, not no_verify, core.utcnow(),
                                          GATEWAY_FACTORY, settings, progress=bar.update)
    finally:
        bar.close()
    if json_out:
        render.print_json(rep.as_json())
        return
    if rep.club_created:
        render.console.print(render.line(f"created club {rep.club_id} for chat {rep.chat_id}"
                                          f" with {rep.organizers} organizer(s) from its admins"))
    render.console.print(render_ops.history_summary(rep))
    for n in rep.notes:
        render.console.print(render.note("note", n))


@app.command()
@guarded
def doctor(json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Check config, store, Telegram login, privacy mode and the bot's rights per club."""
    settings = settings_for(config, store)
    checks = ops.doctor_checks(settings, GATEWAY_FACTORY)
    if json_out:
        render.print_json([c.as_json() for c in checks])
    else:
        render.console.print(render_ops.doctor_table(checks))
    if any(c.level == "fail" for c in checks):
        raise typer.Exit(1)


@app.command()
@guarded
def forget(telegram_id: Annotated[int, typer.Argument(help="the person's Telegram user id",
                                                     callback=telegram_id_callback)],
           yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
           json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Erase the account and every membership of one person (data-protection requests)."""
    settings = settings_for(config, store)
    spool = Path(settings.telegram.session_dir) / SPOOL_NAME
    with open_existing_store(settings) as st:  # nothing to erase in a store that is not there
        preview = ops.forget_preview(st, telegram_id, spool=spool)
        if not preview.found:
            ops.tell_running_serves(st, telegram_id)
            _forget_out(preview, json_out)
            return
        if not yes and not _confirmed(preview):
            raise TgsyncError("not confirmed: nothing removed")
        rep = ops.forget(st, core.make_cache(settings), telegram_id, spool=spool)
    _forget_out(rep, json_out)


def _confirmed(preview) -> bool:
    """Ask on a terminal; read one answer line from a pipe. No input at all is a refusal, in one
    line, before anything is shown: a script that forgot --yes must not hang or half-act."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        raise TgsyncError(NO_INPUT)
    interactive = stdin.isatty()
    answer = ""
    if not interactive:
        answer = stdin.readline()
        if not answer:
            raise TgsyncError(NO_INPUT)
    for line in render_ops.forget_lines(preview, preview=True):
        render.err_console.print(render.line(line), highlight=False)
    if interactive:
        try:
            return typer.confirm("Erase this person for good?", default=False, err=True)
        except typer.Abort:
            raise TgsyncError(NO_INPUT) from None
    return answer.strip().lower() in ("y", "yes")


NO_INPUT = "forget needs confirmation: pass --yes (no input to ask on)"


def _forget_out(rep, json_out: bool) -> None:
    if json_out:
        render.print_json(rep.as_json())
    else:
        for line in render_ops.forget_lines(rep):
            render.console.print(render.line(line), highlight=False)
