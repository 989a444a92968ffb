"""`tgsync status`: a running serve's health and figures, read from its own endpoint.

It asks /readyz, /healthz and /metrics at the address serve listens on (metrics.listen, or
--metrics) and turns the figures into what a person asks first: is it up, since when, when did
the last update arrive, is work piling up, is anything waiting on disk, are the store and Redis
answering. Nothing here talks to Telegram or to the store.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from tgsync_cli.core.errors import TgsyncError

DEFAULT_LISTEN = "127.0.0.1:9108"
# what a scraped serve can show at most: a runaway or hostile endpoint cannot fill memory
MAX_BODY = 4 << 20


@dataclass
class ServeStatus:
    address: str
    ready: bool
    ready_reason: str
    healthy: bool
    health_reason: str
    version: Optional[str] = None
    up_since: Optional[float] = None       # Unix time serving began
    last_update: Optional[float] = None    # Unix time the newest update arrived
    update_age: Optional[float] = None
    backlog: Optional[int] = None
    spool_lines: Optional[int] = None
    spool_bytes: Optional[int] = None
    store_down: Optional[bool] = None
    store_round_trips: Optional[int] = None
    redis_degraded: Optional[bool] = None  # None: serve does not use Redis
    updates: Dict[str, int] = field(default_factory=dict)
    events: Dict[str, Dict[str, int]] = field(default_factory=dict)  # route → outcome → n

    def as_json(self) -> Dict[str, Any]:
        return {"address": self.address, "ready": self.ready, "ready_reason": self.ready_reason,
                "healthy": self.healthy, "health_reason": self.health_reason,
                "version": self.version, "up_since": _iso(self.up_since),
                "last_update": _iso(self.last_update), "update_age_seconds": self.update_age,
                "backlog": self.backlog,
                "spool": {"lines": self.spool_lines, "bytes": self.spool_bytes},
                "store": {"up": None if self.store_down is None else not self.store_down,
                          "round_trips": self.store_round_trips},
                "redis": (None if self.redis_degraded is None
                          else ("degraded" if self.redis_degraded else "ok")),
                "updates": self.updates, "events": self.events}


def _iso(t: Optional[float]) -> Optional[str]:
    from datetime import datetime, timezone

    if not t:
        return None
    return datetime.fromtimestamp(t, timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _get(base: str, path: str, timeout: float) -> Tuple[int, str]:
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as resp:
            return resp.status, resp.read(MAX_BODY).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(MAX_BODY).decode("utf-8", "replace")


def read_status(host: str, port: int, timeout: float = 3.0) -> ServeStatus:
    """The serve listening at host:port, or a TgsyncError that says nothing answers there."""
    shown = f"[{host}]" if ":" in host else host
    address = f"{shown}:{port}"
    base = f"http://{address}"
    try:
        ready_code, ready_why = _get(base, "/readyz", timeout)
        health_code, health_why = _get(base, "/healthz", timeout)
        metrics_code, text = _get(base, "/metrics", timeout)
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        cause = getattr(exc, "reason", exc)
        cause = getattr(cause, "strerror", None) or str(cause) or type(exc).__name__
        raise TgsyncError(f"nothing answers at {address} ({cause}): is serve running with "
                          "metrics.listen (or --metrics) set to it?") from None
    if metrics_code != 200 or ready_code not in (200, 503):
        raise TgsyncError(f"{address} is not a tgsync serve (/metrics answered {metrics_code}, "
                          f"/readyz {ready_code})")
    status = ServeStatus(address, ready_code == 200, _first_line(ready_why),
                         health_code == 200, _first_line(health_why))
    _fill(status, text)
    return status


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


def _fill(status: ServeStatus, text: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # not Prometheus' format: say so instead of a traceback
        raise TgsyncError(f"{status.address}/metrics is not in Prometheus' text format ({exc})") from None
    gauges: Dict[str, float] = {}
    round_trips = 0.0
    for family in families:
        for s in family.samples:
            if s.name == "tgsync_build_info":
                status.version = str(s.labels.get("version"))[:40]
            elif s.name == "tgsync_updates_received_total":
                status.updates[str(s.labels.get("kind"))[:40]] = int(s.value)
            elif s.name == "tgsync_events_total":
                route = str(s.labels.get("route"))[:40]
                status.events.setdefault(route, {})[str(s.labels.get("outcome"))[:20]] = int(s.value)
            elif s.name == "tgsync_store_call_seconds_count":
                round_trips += s.value
            elif not s.labels:
                gauges[s.name] = s.value
    status.up_since = gauges.get("tgsync_started_timestamp_seconds") or None
    status.last_update = gauges.get("tgsync_last_update_timestamp_seconds") or None
    status.update_age = gauges.get("tgsync_newest_update_age_seconds")
    status.backlog = _int(gauges.get("tgsync_work_backlog"))
    status.spool_lines = _int(gauges.get("tgsync_spool_lines"))
    status.spool_bytes = _int(gauges.get("tgsync_spool_bytes"))
    down = gauges.get("tgsync_store_down")
    status.store_down = None if down is None else bool(down) or status.ready_reason.startswith("store")
    status.store_round_trips = int(round_trips)
    redis = gauges.get("tgsync_redis_degraded")
    status.redis_degraded = None if redis is None else bool(redis)


def _int(v: Optional[float]) -> Optional[int]:
    return None if v is None else int(v)
