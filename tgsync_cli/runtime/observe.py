"""`serve --metrics`: the figures, the probes and the endpoint put around a built Runtime.

Kept apart from runtime/serve.py so serving without metrics loads none of it, and so tests put
the very same parts around a serve built on the simulator's gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from tgsync_cli.runtime.endpoint import Endpoint, describe
from tgsync_cli.runtime.health import ServeHealth, StoreProbe
from tgsync_cli.runtime.metrics import DRIFT_REFRESH_SECONDS, DriftReader, Metrics, ServeFigures


def instrument(metrics: Metrics, store: Any, gateway: Any) -> Tuple[Any, Any]:
    """The store and gateway the engine should get: timed and counted."""
    return metrics.timed_store(store), metrics.counted_gateway(gateway)


class Observed:
    """A running serve's endpoint and store prober; `close` when serve ends."""

    def __init__(self, endpoint: Endpoint, probe: StoreProbe, health: ServeHealth) -> None:
        self.endpoint, self.probe, self.health = endpoint, probe, health

    @property
    def port(self) -> int:
        return self.endpoint.port

    def close(self) -> None:
        self.endpoint.close()
        self.probe.close()


def attach(runtime: Any, metrics: Metrics, host: str, port: int, *, store: Any,
           spool_path: Optional[Path] = None, stuck_seconds: float = 120.0,
           probe_seconds: float = 10.0,
           drift_refresh_seconds: float = DRIFT_REFRESH_SECONDS) -> Observed:
    """Bind the endpoint (a port in use fails here, before Telegram is contacted), count the
    pipeline's outcomes, start the store prober, and say where the endpoint is at start-up.
    `store` is the store itself, not the timed one: probes are not the bot's round trips."""
    if hasattr(runtime.pipeline, "observer"):
        runtime.pipeline.observer = metrics.observer()
    probe = StoreProbe(store, probe_seconds)
    health = ServeHealth(runtime, probe, stuck_seconds=stuck_seconds)
    metrics.add_collector(ServeFigures(runtime, spool_path=spool_path, health=health,
                                       drift=DriftReader(store, drift_refresh_seconds)))
    endpoint = Endpoint(host, port, metrics.registry, health.liveness, health.readiness)
    runtime.on_started = _with_note(runtime.on_started, describe(host, endpoint.port))
    probe.start()
    endpoint.start()
    return Observed(endpoint, probe, health)


def _with_note(on_started: Optional[Callable[[Any], None]], note: str) -> Callable[[Any], None]:
    def started(report: Any) -> None:
        report.metrics = note
        if on_started is not None:
            on_started(report)
    return started
