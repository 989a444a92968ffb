"""Scale-out commands: `worker` applies the slow path that `serve --queue celery` enqueues."""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

from tgsync_cli.cli.args import choice_callback
from tgsync_cli.cli.base import (
    ConfigOpt,
    MetricsOpt,
    app,
    guarded,
    metrics_address,
    settings_for,
    setup_logging,
)
from tgsync_cli.core.errors import ConfigError, TgsyncError


def _shared_store(value):
    """A worker shares the store with serve and the other workers: a private in-memory store
    would take events off the queue and lose them."""
    if value is not None and value.strip().startswith("memory:"):
        raise typer.BadParameter("memory: is private to one process; a worker needs the store "
                                 "serve uses (mongodb://… or file:PATH)")
    return value


@app.command()
@guarded
def worker(concurrency: Annotated[int, typer.Option("--concurrency", min=1,
                                                   help="worker processes (threads with --pool threads)")] = 1,
           pool: Annotated[str, typer.Option("--pool", help="prefork | threads | solo",
                                             callback=choice_callback("prefork", "threads", "solo"))] = "prefork",
           metrics: MetricsOpt = None,
           config: ConfigOpt = None,
           store: Annotated[Optional[str], typer.Option("--store", callback=_shared_store,
                                              help="store URI: mongodb://… or file:PATH")] = None) -> None:
    """Start a Celery worker on queue.broker_url that applies enqueued events to the store."""
    settings = settings_for(config, store)
    if settings.store.uri.startswith("memory:"):
        raise ConfigError("store.uri = memory: is private to one process; a worker needs the store "
                          "serve uses (mongodb://… or file:PATH)")
    listen = metrics_address(settings, metrics, "worker_listen")  # a bad address is refused before anything connects
    setup_logging(json_lines=settings.log.json, level=settings.log.level, library_level="warning")
    _check_broker(settings.queue.broker_url)
    from tgsync_cli.runtime.celery_queue import (
        run_worker,  # Celery is imported only for this command
    )

    run_worker(settings, concurrency=concurrency, pool=pool, loglevel=settings.log.level.upper(),
               quiet=settings.log.json, listen=listen)


def _check_broker(url: str) -> None:
    """One line and exit 1 when Redis is down, instead of Celery's banner and 100 retries."""
    import redis

    from tgsync_cli.stores import redact_uri

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except ValueError as exc:
        raise ConfigError(f"queue.broker_url {redact_uri(url)} is not a Redis URL ({exc})") from None
    except redis.RedisError as exc:
        cause = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise TgsyncError(f"queue.broker_url {redact_uri(url)}: Redis is not reachable ({cause})") from None
