"""Live Telegram commands: serve, import-admins, import-members, post-invite.

pyrogram is imported inside each command (through ops.live_imports / runtime.serve), never at
module level: `tgsync --help` and the offline commands must not pay for loading it.
"""

from __future__ import annotations

import enum
import logging
from typing import Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from tgsync_cli.cli import render
from tgsync_cli.cli.args import LiveChatArg
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.entry import EarlyStop, now_stopping, say_stopped, signalled_early
from tgsync_cli.cli.base import (
    ConfigOpt,
    JsonOpt,
    MetricsOpt,
    metrics_address,
    StoreOpt,
    app,
    guarded,
    settings_for,
    setup_logging,
)


def _core():
    from tgsync_cli.ops import live_imports  # loads pyrogram

    return live_imports


class Queue(str, enum.Enum):
    inprocess = "inprocess"
    celery = "celery"


ChatArg = LiveChatArg


@app.command()
@guarded
def serve(log_json: Annotated[bool, typer.Option("--log-json", help="JSON log lines on stderr")] = False,
          queue: Annotated[Optional[Queue], typer.Option(
              "--queue", help="work queue (default: queue.backend)")] = None,
          metrics: MetricsOpt = None,
          config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Run the bot: follow joins, leaves, messages and registrations live.

    SIGINT/SIGTERM apply or save pending work, then exit 0 (also while still starting)."""
    json_logs = log_json
    try:
        # JSON from the first line when asked on the command line; the config may ask too
        setup_logging(json_lines=json_logs, level="info", library_level="warning")
        said: list = []  # warnings about the config: logged once the log format is known
        settings = settings_for(config, store, warn=said.append)
        json_logs = log_json or settings.log.json
        listen = metrics_address(settings, metrics)  # a bad address is refused before anything connects
        from tgsync_cli.runtime import (
            serve as runtime,  # pyrogram's handler machinery only when serving
        )

        setup_logging(json_lines=json_logs, level=settings.log.level, library_level="warning")
        for text in said:
            logging.getLogger("tgsync.config").warning("%s", text.removeprefix("warning: "))
        code = runtime.serve(settings, queue.value if queue else None,
                             on_started=lambda report: _show_startup(report, json_logs),
                             on_stopping=now_stopping, listen=listen, signalled_early=signalled_early)
    except (KeyboardInterrupt, EarlyStop) as stop:  # before serve's own handlers: nothing taken yet
        _stopped_while_starting(json_logs, hard=isinstance(stop, EarlyStop))
        code = 0
    except TgsyncError as exc:
        if not json_logs:
            raise
        _fatal_json(exc)
    raise typer.Exit(code)


def _stopped_while_starting(json_logs: bool, hard: bool) -> None:
    """One line, the same status as a stop at any later moment; a second signal while saying
    it changes nothing. Run as `tgsync` (hard), the process leaves at once: nothing was accepted,
    and a lock or thread the signal interrupted must not hold the exit."""
    import os
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    say_stopped(json_logs)
    if hard:
        os._exit(0)


def _fatal_json(exc: TgsyncError) -> None:
    """In JSON mode the last line is JSON too: a log collector parses every line."""
    from tgsync_cli.runtime.config import redact

    logging.getLogger("tgsync.serve").critical("%s", redact(" ".join(str(exc).split())),
                                               extra={"event": "fatal"})
    raise typer.Exit(exc.exit_code)


def _show_startup(report, json_logs: bool = False) -> None:
    """What serve found at start (stdout); the bot's username and group titles come from
    Telegram. The privacy warning goes to stderr, as a log record when logs are JSON."""
    c = render.console
    privacy = {False: "off", True: "on", None: "unknown (Telegram does not tell bots)"}
    c.print(render.line(("tgsync serving", "bold"), f" as @{report.username} (id {report.bot_id})"))
    c.print(render.line(f"privacy mode: {privacy[report.privacy_mode]}"))
    if report.replayed:
        c.print(render.line(f"replayed {report.replayed} events saved at the last shutdown"))
    if report.metrics:
        c.print(render.line(f"health and metrics: {report.metrics}"))
    rows = [[club.chat_id, club.name or "",
             "admin" if club.bot_is_admin else ("member" if club.bot_present else "absent")]
            for club in report.clubs]
    c.print(render.table(f"Clubs ({len(report.clubs)})", ("chat", "name", "bot"), rows, keep=("chat",)))
    if report.route4_warning and json_logs:
        import logging

        logging.getLogger("tgsync.serve").warning("%s", report.route4_warning,
                                                  extra={"event": "privacy_warning"})
    elif report.route4_warning:
        render.err_console.print(render.note("warning", report.route4_warning))
    c.print("Ctrl-C (SIGINT) or SIGTERM stops after pending work is applied or saved for the next start.")


def _summary_table(title: str, s) -> Table:
    t = Table(title=render.plain(title))  # the club's name comes from Telegram
    for col in ("added", "updated", "unchanged", "skipped"):
        t.add_column(col, justify="right")
    t.add_row(str(s.added), str(s.updated), str(s.unchanged), str(s.skipped))
    return t


def _club_line(s) -> str:
    made = " (club created)" if s.club_created else ""
    return f"{s.name} ({s.chat_id}, {s.club_id}){made}"


@app.command("import-admins")
@guarded
def import_admins(chat: ChatArg, json_out: JsonOpt = False, config: ConfigOpt = None,
                  store: StoreOpt = None) -> None:
    """For a group the bot is already in: its admins become the club's organizers."""
    s = _core().import_admins(settings_for(config, store), chat)
    if json_out:
        render.print_json(s.as_json())
        return
    render.console.print(_summary_table(f"Admins of {_club_line(s)}", s))
    render.console.print("skipped: bots and Telegram's stand-in senders", style="dim")


@app.command("import-members")
@guarded
def import_members(chat: ChatArg, json_out: JsonOpt = False, config: ConfigOpt = None,
                   store: StoreOpt = None) -> None:
    """Add every member Telegram lists (the bot must be an admin; Telegram lists at most 10,000)."""
    settings = settings_for(config, store)
    bar = render.ProgressBar("members")
    try:
        s = _core().import_members(settings, chat, bar.update)
    finally:
        bar.close()
    if json_out:
        render.print_json(s.as_json())
        return
    render.console.print(_summary_table(f"Members of {_club_line(s)}", s))
    render.console.print(f"listed by Telegram: {s.listed}; skipped: bots and stand-in senders",
                         style="dim")


@app.command("post-invite")
@guarded
def post_invite(chat: ChatArg, json_out: JsonOpt = False, config: ConfigOpt = None,
                store: StoreOpt = None) -> None:
    """Post the message with the registration button into the group."""
    s = _core().post_invite(settings_for(config, store), chat)
    if json_out:
        render.print_json(s.as_json())
        return
    render.console.print(render.line(f"invite posted to {_club_line(s)}"))
    render.console.print(render.line(f"button: {s.link}"))
