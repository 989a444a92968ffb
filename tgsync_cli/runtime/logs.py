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


def configure(json_lines: bool = False, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redacting())
    handler.setFormatter(_JsonFormatter() if json_lines else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("tgsync")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
