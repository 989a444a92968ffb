"""Operator commands: reconcile, import-history, doctor, forget."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from tgsync_cli import ops
from tgsync_cli.cli import render, render_ops
from tgsync_cli.cli.base import ConfigOpt, JsonOpt, StoreOpt, app, guarded, settings_for
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.runtime import wiring as core
from tgsync_cli.runtime.pipeline import SPOOL_NAME

# settings → context manager yielding a TelegramGateway. Tests replace it with the simulator's
# gateway; nothing else should.
GATEWAY_FACTORY: ops.GatewayFactory = ops.gateway_for


@app.command()
@guarded
def reconcile(chat: Annotated[Optional[str], typer.Argument(help="chat id, @username or club_ id")] = None,
              all_clubs: Annotated[bool, typer.Option("--all", help="every club in the store")] = False,
              threshold: Annotated[Optional[int], typer.Option(
                  "--threshold", help="exit 3 when drift exceeds this (default sync.reconcile_threshold)")] = None,
              dry_run: Annotated[bool, typer.Option("--dry-run", help="compare only, write nothing")] = False,
              json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Compare each club with Telegram, fix the roster where the bot may list it (exit 3 on drift)."""
    settings = settings_for(config, store)
    limit = settings.sync.reconcile_threshold if threshold is None else threshold
    with core.store_from(settings) as st:
        with GATEWAY_FACTORY(settings) as gw:
            outcome = ops.reconcile_clubs(st, gw, chat, all_clubs, core.utcnow(), dry_run, limit, settings)
    if json_out:
        render.print_json(outcome.as_json())
    else:
        render.console.print(render_ops.reconcile_table(outcome))
    for c in outcome.failed:
        render.err_console.print(f"error: {c.chat_id}: {c.error}", markup=False, highlight=False)
    raise typer.Exit(outcome.exit_code)


@app.command("import-history")
@guarded
def import_history(file: Annotated[str, typer.Argument(help="Telegram Desktop export result.json")],
                   chat: Annotated[str, typer.Option("--chat", help="the group's chat id (authoritative)")],
                   no_verify: Annotated[bool, typer.Option(
                       "--no-verify", help="take the last evidence as status; do not ask Telegram")] = False,
                   json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Route 7: add everyone who wrote or joined, as Telegram confirms (SPEC §4)."""
    settings = settings_for(config, store)
    with core.store_from(settings) as st:
        rep = ops.import_history_file(st, file, chat, not no_verify, core.utcnow(),
                                      GATEWAY_FACTORY, settings)
    if json_out:
        render.print_json(rep.as_json())
        return
    if rep.club_created:
        render.console.print(f"created club {rep.club_id} for chat {rep.chat_id}")
    render.console.print(render_ops.history_summary(rep))
    for n in rep.notes:
        render.console.print(f"[yellow]note:[/] {n}")


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
def forget(telegram_id: Annotated[int, typer.Argument(help="the person's Telegram user id")],
           yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
           json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Erase the account and every membership of one person (data-protection requests)."""
    settings = settings_for(config, store)
    spool = Path(settings.telegram.session_dir) / SPOOL_NAME
    with core.store_from(settings) as st:
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
    answer = None
    if not interactive:
        answer = stdin.readline()
        if not answer:
            raise TgsyncError(NO_INPUT)
    for line in render_ops.forget_lines(preview, preview=True):
        render.err_console.print(line, markup=False, highlight=False)
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
            render.console.print(line, markup=False, highlight=False)
