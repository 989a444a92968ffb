"""Scale-out commands: `worker` applies the slow path that `serve --queue celery` enqueues."""

from __future__ import annotations

import typer
from typing_extensions import Annotated

from tgsync_cli.cli.base import ConfigOpt, StoreOpt, app, guarded, settings_for


@app.command()
@guarded
def worker(concurrency: Annotated[int, typer.Option("--concurrency", min=1,
                                                   help="worker processes (threads with --pool threads)")] = 1,
           pool: Annotated[str, typer.Option("--pool", help="prefork | threads | solo")] = "prefork",
           config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Start a Celery worker on queue.broker_url that applies enqueued events to the store."""
    if pool not in ("prefork", "threads", "solo"):
        raise typer.BadParameter("expected prefork, threads or solo", param_hint="--pool")
    from tgsync_cli.runtime.celery_queue import (
        run_worker,  # Celery is imported only for this command
    )

    run_worker(settings_for(config, store), concurrency=concurrency, pool=pool)
