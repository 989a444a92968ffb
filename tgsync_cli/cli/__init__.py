"""Console entry point: the Typer app with every command area registered."""

from __future__ import annotations

import importlib
import signal
import sys
import warnings

from tgsync_cli.cli.args import use_command_class
from tgsync_cli.cli.base import Terminated, app

# Command areas register themselves on `app` when imported; optional ones may be absent.
for _area in ("offline", "live", "ops", "scale", "store", "insights", "status", "requests"):
    try:
        importlib.import_module(f"tgsync_cli.cli.{_area}")
    except ModuleNotFoundError as exc:  # an area not built yet is simply not offered
        if exc.name != f"tgsync_cli.cli.{_area}":
            raise

use_command_class(app)  # options first; only a bare negative number is a (chat) id


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (pymongo on an unknown URI option…) is one redacted line, not a
    source excerpt from site-packages."""
    from tgsync_cli.runtime.config import redact

    import logging

    parts = str(filename).replace("\\", "/").split("/")
    who = parts[parts.index("site-packages") + 1] if "site-packages" in parts[:-1] else ""
    text = redact(" ".join(str(message).split()))[:300]
    logger = logging.getLogger("py.warnings")
    if logger.handlers:  # our log handler: plain or JSON, as the command's other log lines
        logger.warning("%s%s", who + ": " if who else "", text)
    else:
        print(f"warning: {who + ': ' if who else ''}{text}", file=sys.stderr)


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    warnings.showwarning = _one_line_warning
    # SIGTERM ends a command like Ctrl-C does (cleanly, within a moment, also while connecting);
    # `serve` installs its own handlers to drain first and exit 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    app(prog_name="tgsync")
