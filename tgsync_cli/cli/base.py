"""The Typer app, the options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import functools
import os
import sys
from typing import Optional

import typer
from typing_extensions import Annotated

from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.runtime.config import Settings, load_settings, redact

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Keep a running club's Ayda Run roster in step with its Telegram group.")

ConfigOpt = Annotated[Optional[str], typer.Option("--config", help="config file (default ./tgsync.toml)")]
StoreOpt = Annotated[Optional[str], typer.Option("--store", help="store URI: mongodb://…, file:PATH, memory:")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine output on stdout")]

_global = {"config": None, "store": None}


@app.callback()
def _root(config: ConfigOpt = None, store: StoreOpt = None) -> None:
    _global["config"], _global["store"] = config, store


def settings_for(config: Optional[str], store: Optional[str]) -> Settings:
    return load_settings(config or _global["config"], store=store or _global["store"])


def guarded(fn):
    """TgsyncError → `error: <one line>` on stderr, exit 1; nothing else leaks a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except TgsyncError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # a bug: still one line, secrets scrubbed
            if os.environ.get("TGSYNC_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set TGSYNC_DEBUG=1 for a traceback)", 1)

    return wrapper


def _fail(message: str, code: int) -> None:
    print("error: " + redact(" ".join(message.split())), file=sys.stderr)
    raise typer.Exit(code)


def setup_logging(json_lines: bool = False, level: str = "info") -> None:
    from tgsync_cli.runtime.logs import configure

    configure(json_lines=json_lines, level=level)
