"""Logging set-up: plain or JSON lines on stderr, every record scrubbed of known secrets."""

from __future__ import annotations

import json
import logging
import sys

from tgsync_cli.runtime.config import redact


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        for key in ("event", "chat_id", "user_id", "backlog"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps(doc, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time, not the stream current at `configure`:
    a command run in-process (tests' CliRunner, an embedding app) swaps stderr and closes its
    stand-in afterwards, and a handler bound to it would then fail on every later record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(json_lines: bool = False, level: str = "info") -> None:
    handler = _StderrHandler()
    handler.addFilter(_Redacting())
    handler.setFormatter(_JsonFormatter() if json_lines else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("tgsync")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
