"""The Typer app, the options every command shares, and the one place errors become exit codes."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Dict, Optional

import typer
from typing_extensions import Annotated

from tgsync_cli.core.errors import StoreError, TgsyncError
from tgsync_cli.runtime.config import Settings, load_settings, redact

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Keep a running club's Ayda Run roster in step with its Telegram group.")

ConfigOpt = Annotated[Optional[str], typer.Option("--config", help="config file (default ./tgsync.toml)")]
StoreOpt = Annotated[Optional[str], typer.Option("--store", help="store URI: mongodb://…, file:PATH, memory:")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine output on stdout")]


def _listen_callback(value: Optional[str]) -> Optional[str]:
    from tgsync_cli.runtime.config import parse_listen

    if value is not None:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r}: {exc}") from None
    return value


MetricsOpt = Annotated[Optional[str], typer.Option(
    "--metrics", metavar="HOST:PORT", callback=_listen_callback,
    help="serve /healthz, /readyz and /metrics here (default: metrics.listen, for a worker "
         "metrics.worker_listen; off when unset)")]

_global: Dict[str, Any] = {"config": None, "store": None}


class lazy_module:  # noqa: N801 - used like a module
    """A module imported on first use: `tgsync --help` must not pay for pymongo, the engine or
    the simulator (nor pyrogram) that only running a command needs."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        import importlib

        return getattr(importlib.import_module(self._name), attr)


def _version(value: bool) -> None:
    if value:
        from tgsync_cli import __version__

        print(f"tgsync {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(config: ConfigOpt = None, store: StoreOpt = None,
          verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                                help="log what tgsync and its libraries do")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    _global["config"], _global["store"], _global["verbose"] = config, store, verbose
    # one-shot commands: our warnings; a library's trouble reaches the operator as the cause in
    # our one error line (or everything with -v). serve and worker reconfigure for a long run.
    setup_logging(level="warning", library_level="critical", compact=True)


def metrics_address(settings: Settings, option: Optional[str], key: str = "listen"):
    """(host, port) for the health and metrics endpoint, or None when it is off. A non-loopback
    address needs metrics.allow_remote, whether it came from --metrics or the config. serve
    reads metrics.listen, worker metrics.worker_listen: both run on one machine."""
    listen = option or getattr(settings.metrics, key)
    if not listen:
        return None
    from tgsync_cli.runtime.endpoint import checked_address

    return checked_address(listen, settings.metrics.allow_remote,
                           "--metrics" if option else f"metrics.{key}")


def settings_for(config: Optional[str], store: Optional[str]) -> Settings:
    return load_settings(config or _global["config"], store=store or _global["store"])


def explicit_store(store: Optional[str]) -> Optional[str]:
    """The store the operator named on the command line (not the configured one), if any."""
    return store or _global["store"]


def open_existing_store(settings: Settings):
    """The configured store for a command that only reads or fixes what is there: a missing
    one is an error naming it, never created."""
    return open_store_checked(settings, create=False)


def open_store_checked(settings: Settings, create: bool = True):
    """open_store, with a missing (create=False) or damaged store reported in one line naming
    the (redacted) URI and the cause (the store layer says both; this only adds the name where a
    driver's message lacks it)."""
    from tgsync_cli.stores import open_store, redact_uri

    label = redact_uri(settings.store.uri)
    try:
        store = open_store(settings.store.uri, settings.store.database, create=create,
                           time_format=settings.store.time_format)
    except StoreError as exc:  # missing, damaged, unreachable, refused: say which store
        if label in str(exc):
            raise
        raise StoreError(f"store {label}: {exc}") from None
    except OSError as exc:
        raise StoreError(f"store {label} cannot be opened: {exc.strerror or exc}") from None
    warning = getattr(store, "index_warning", None)
    if warning:  # a shared MongoDB without tgsync's indexes: reading works, say what to run
        print(f"warning: {redact(warning)}", file=sys.stderr)
    return store


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is (see cli.main)."""


def guarded(fn):
    """TgsyncError → `error: <one line>` on stderr, exit 1; usage errors stay Click's (exit 2);
    nothing else leaks a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, typer.BadParameter):
            raise
        except Exception as exc:
            from tgsync_cli.cli.args import ClickException

            if isinstance(exc, ClickException):  # usage errors: Click prints them, exit 2
                raise
            if isinstance(exc, BrokenPipeError):
                _reader_went_away()
            if isinstance(exc, TgsyncError):
                _fail(str(exc), exc.exit_code)
            if os.environ.get("TGSYNC_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set TGSYNC_DEBUG=1 for a traceback)", 1)
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):
                _fail("terminated (SIGTERM)", 143)
            _fail("interrupted", 130)

    return wrapper


def _reader_went_away() -> None:
    """`tgsync clubs --json | head`: the reader closed the pipe. Stop quietly, like other Unix
    tools (exit 141 = killed by SIGPIPE), and keep Python from complaining at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (test runner)
        pass
    raise typer.Exit(141)


def _fail(message: str, code: int) -> None:
    from tgsync_cli.cli.render import plain

    text = plain(redact(" ".join(message.split())), limit=1000).plain  # control codes shown, not obeyed
    print("error: " + text, file=sys.stderr)
    raise typer.Exit(code)


def setup_logging(json_lines: bool = False, level: str = "info", library_level: str = "error",
                  compact: bool = False) -> None:
    from tgsync_cli.runtime.logs import configure

    configure(json_lines=json_lines, level=level, verbose=bool(_global.get("verbose")),
              library_level=library_level, compact=compact)
