"""`tgsync status`: what a running serve says about itself, for a person or a script."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, List, Optional, Tuple

import typer
from typing_extensions import Annotated

from tgsync_cli.cli import render
from tgsync_cli.cli.base import ConfigOpt, JsonOpt, _listen_callback, app, guarded, settings_for

if TYPE_CHECKING:
    from tgsync_cli.ops.status import ServeStatus

AddressOpt = Annotated[Optional[str], typer.Option(
    "--metrics", metavar="HOST:PORT", callback=_listen_callback,
    help="where serve's endpoint listens (default: metrics.listen, else 127.0.0.1:9108)")]


@app.command()
@guarded
def status(json_out: JsonOpt = False, metrics: AddressOpt = None, config: ConfigOpt = None) -> None:
    """A running serve's health, backlog, spool and last update, from its metrics endpoint
    (metrics.listen, or --metrics). Exit 1 when nothing answers there."""
    from tgsync_cli.ops.status import DEFAULT_LISTEN, read_status
    from tgsync_cli.runtime.config import parse_listen

    settings = settings_for(config, None)
    host, port = parse_listen(metrics or settings.metrics.listen or DEFAULT_LISTEN)
    s = read_status(host, port)
    if json_out:
        render.print_json(s.as_json())
        return
    head = ("ready", "bold green") if s.ready else (f"not ready: {s.ready_reason}", "bold red")
    render.console.print(render.line(f"tgsync serve at {s.address}: ", head))
    render.console.print(render.table("", ("figure", "value"), _rows(s), keep=("figure",),
                                      show_header=False, box=None))


def _rows(s: "ServeStatus") -> List[Tuple[str, str]]:
    now = time.time()
    return [
        ("health", "ok" if s.healthy else s.health_reason),
        ("up since", _when(s.up_since, now) if s.up_since else "starting"),
        ("last update", _when(s.last_update, now) if s.last_update else "none yet"),
        ("updates", ", ".join(f"{k} {v}" for k, v in sorted(s.updates.items())) or "none"),
        ("backlog", _n(s.backlog, "event")),
        ("spool", "empty" if not s.spool_lines else
         f"{_n(s.spool_lines, 'line')}, {_n(s.spool_bytes, 'byte')} waiting for the next start or flush"),
        ("store", ("unavailable" if s.store_down else "ok")
         + (f" ({_n(s.store_round_trips, 'round trip')})" if s.store_round_trips is not None else "")),
        ("Redis", "not used" if s.redis_degraded is None
         else ("degraded: work goes on against the store" if s.redis_degraded else "ok")),
        ("version", s.version or "?"),
    ]


def _n(v: Optional[int], unit: str) -> str:
    if v is None:
        return "?"
    return f"{v:,} {unit}{'' if v == 1 else 's'}"


def _when(t: float, now: float) -> str:
    from tgsync_cli.ops.status import _iso

    return f"{_iso(t)} ({_ago(max(now - t, 0))} ago)"


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
