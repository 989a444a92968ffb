"""The `tgsync` console script: signal handlers first, then the CLI.

Importing the CLI (Typer, Rich) takes a few tenths of a second; a Ctrl-C or SIGTERM in that
window must end the command like one a moment later does — one line, and exit 0 for `serve`
(130/143 for the others) — never a traceback or a silent death by signal."""

from __future__ import annotations

import signal
import sys


class EarlyStop(BaseException):
    """SIGINT/SIGTERM before a command's own handling: not a KeyboardInterrupt, so neither
    Click nor a command's cleanup mistakes it for Ctrl-C at a prompt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_stopping = {"now": False, "early": False}


def now_stopping() -> None:
    """serve has begun to stop (drain, spool, disconnect): a further signal changes nothing, and
    the status stays 0."""
    _stopping["now"] = True


def _early(signum: int, frame: object) -> None:
    if not _stopping["now"]:
        _stopping["early"] = True
        raise EarlyStop(signum)


def signalled_early() -> bool:
    """A stop signal reached the entry point's handler. Its EarlyStop normally ends the process
    at once; a library that catches BaseException where the signal landed (an import, a lock)
    can swallow it, and serve must then still stop instead of running on."""
    return _stopping["early"]


def main() -> None:
    previous = {s: signal.signal(s, _early) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        from tgsync_cli.cli import main as cli_main

        if _command(sys.argv[1:]) != "serve":  # serve keeps these until its own are in place
            signal.signal(signal.SIGINT, previous[signal.SIGINT])
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        cli_main()
    except EarlyStop as stop:
        _stopped_before_start(stop.signum, sys.argv[1:])


def serving_stop_handlers_installed() -> bool:
    """True while the early handlers are still the process's (serve, before its loop's own)."""
    return signal.getsignal(signal.SIGTERM) is _early


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


STOPPED_EARLY = "stopped while starting: nothing was taken from Telegram"


def say_stopped(json_lines: bool) -> None:
    """serve's one line for a stop before it runs, in the log's own format but written without
    the logging module: the signal may have landed while logging held its lock."""
    import time

    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if json_lines:
        import json

        line = json.dumps({"ts": ts, "level": "warning", "logger": "tgsync.serve", "msg": STOPPED_EARLY,
                           "event": "stopped"})
    else:
        line = f"{ts} WARNING tgsync.serve: {STOPPED_EARLY}"
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the status still says it
        pass


def _stopped_before_start(signum: int, argv: list[str]) -> None:
    """Nothing was accepted yet, so nothing can be lost: say so and leave at once (a lock the
    signal interrupted, or a thread a half-done import started, must not hold the exit)."""
    import os

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    if _command(argv) == "serve":
        say_stopped("--log-json" in argv)
        os._exit(0)
    said = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
    try:
        sys.stderr.write(f"error: {said}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(130 if signum == signal.SIGINT else 143)
