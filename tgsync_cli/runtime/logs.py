"""Logging set-up: one handler on stderr for our records and every library's, plain or JSON
lines, UTC timestamps with their zone, every record scrubbed of known secrets.

Libraries (pyrogram, pymongo, Celery, kombu, asyncio…) speak through the same handler, so
`serve --log-json` writes nothing but JSON, and they stay quiet below `library_level` unless
the operator asks for more with -v: a one-shot command that cannot connect says so in one line
with the cause, not with seven lines of a library's retries.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from tgsync_cli.runtime.config import redact

LIBRARIES = ("pyrogram", "pymongo", "celery", "kombu", "amqp", "redis", "asyncio", "litemongo")


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


class _LibraryThreshold(logging.Filter):
    """Libraries' records below their threshold are dropped here, not at their logger, so a
    `LastWords` can still see the warning that explains a failure."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.name.startswith("tgsync") or record.name == "py.warnings"
                or record.levelno >= self.level)


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record, datefmt=None) -> str:  # noqa: N802 (logging's name)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z"


class _PlainFormatter(_UtcFormatter):
    def __init__(self, compact: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.compact = compact

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        if self.compact:  # a one-shot command: "warning: …", like its "error: …" line
            return f"{record.levelname.lower()}: {record.getMessage()}"
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return " ".join(text.split("\n")[:1]) if record.exc_info else text.replace("\n", " ")

    def formatException(self, ei) -> str:  # noqa: N802 - one line per record, never a traceback
        return redact(super().formatException(ei).splitlines()[-1])


class _JsonFormatter(_UtcFormatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": self.formatTime(record), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        for key in ("event", "chat_id", "user_id", "backlog"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps(doc, ensure_ascii=False)


def configure(json_lines: bool = False, level: str = "info", verbose: bool = False,
              library_level: str = "error", compact: bool = False) -> logging.Handler:
    """`level` is ours (log.level); libraries log from `library_level` up, or everything at -v."""
    lib_level = logging.INFO if verbose else logging.getLevelName(library_level.upper())
    handler = _Stderr()
    handler.addFilter(_LibraryThreshold(lib_level))
    handler.addFilter(_Redacting())
    handler.setFormatter(_JsonFormatter() if json_lines else _PlainFormatter(compact and not verbose))
    ours = logging.getLogger("tgsync")
    ours.handlers[:] = [handler]
    ours.setLevel("DEBUG" if verbose else level.upper())
    ours.propagate = False
    for name in LIBRARIES:
        lib = logging.getLogger(name)
        lib.handlers[:] = [handler]
        lib.setLevel(min(lib_level, logging.WARNING))
        lib.propagate = False
    warned = logging.getLogger("py.warnings")  # Python warnings, as cli.main hands them over
    warned.handlers[:] = [handler]
    warned.setLevel(logging.WARNING)
    warned.propagate = False
    # any other library's warning: the same one-line format, never Python's bare stderr
    logging.lastResort = handler
    return handler


class _Stderr(logging.StreamHandler):
    """stderr as it is when a record is written (a test runner swaps it between commands)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class LastWords(logging.Handler):
    """Keeps the last warning a library logged, so a failure can name its cause in one line
    (pyrogram logs why it could not connect, then raises a bare ConnectionError)."""

    def __init__(self, logger: str = "pyrogram") -> None:
        super().__init__(logging.WARNING)
        self.last = ""
        self._logger = logging.getLogger(logger)

    def emit(self, record: logging.LogRecord) -> None:
        text = redact(" ".join(record.getMessage().split()))
        # "Connection failed! Trying again..." says less than the refusal logged before it
        if not self.last or "again" not in text.lower():
            self.last = text

    def __enter__(self) -> "LastWords":
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self)
