"""What `serve` and `worker` show on /metrics (Prometheus' text format, by prometheus_client).

Two kinds of figure, so the hot path pays nothing it does not have to:
- counted as it happens: events by route and outcome (the pipeline's observer, on its worker
  thread: in serve plain integers, since a known member's message passes there too; in a
  worker prometheus_client's counters, which its prefork children share through files), store
  calls and their latency (a wrapper around the store, which the hot path never reaches),
  welcome posts and private replies (a wrapper around the gateway);
- read when scraped: updates received (plain integers the update loop bumps), backlog,
  retries, spool, flush, Redis, the age of the newest update, and reconcile drift per club (from
  the club documents that the last `reconcile` wrote, re-read at most once a minute).

Labels never carry a person's id or name: routes, outcomes and store calls are fixed sets, and
the only per-club label is the club's id.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from tgsync_cli import __version__
from tgsync_cli.core.events import (
    BotStatusChanged,
    BotStatusRecheck,
    ChatMigrated,
    DeepLinkStart,
    MemberStatusChanged,
    MessageSeen,
    RosterObserved,
)

log = logging.getLogger("tgsync.metrics")

# seconds: a store round trip is a few ms locally, up to seconds across a network or a failover
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DRIFT_REFRESH_SECONDS = 60.0
UNTIMED = {"close", "before_call", "after_call", "mid_call"}

_ROUTES: Dict[type, Callable[[Any], str]] = {
    MessageSeen: lambda e: "message_activity",
    MemberStatusChanged: lambda e: e.via if e.via in ("chat_member_event", "service_message")
    else "chat_member_event",
    DeepLinkStart: lambda e: "deep_link",
    BotStatusChanged: lambda e: "bot_status",
    ChatMigrated: lambda e: "migration",
    RosterObserved: lambda e: e.source if e.source in ("admin_import", "member_import")
    else "member_import",
    BotStatusRecheck: lambda e: "startup_check",
}


def route_of(event: Any) -> str:
    """The route an event belongs to: a fixed, small set (never anything from the event's data
    beyond its type and route field)."""
    named = _ROUTES.get(type(event))
    return named(event) if named is not None else "other"


class Metrics:
    """The counters the slow path bumps, in one registry. `exposed` adds build info and the
    process figures (False in a prefork worker's child: its parent shows those, and the
    child's counters reach the parent through prometheus_client's multiprocess files)."""

    def __init__(self, role: str = "serve", exposed: bool = True) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        if exposed:
            add_build_info(r, role)
        # serve: plain integers (EventTally, read when scraped); a worker: shared counters
        self.tally: Optional[EventTally] = None
        self.events: Optional[Counter] = None
        if role == "worker":
            self.events = Counter("tgsync_events", EVENTS_DOC, ["route", "outcome"], registry=r)
        else:
            self.tally = EventTally(self)
            r.register(self.tally)
        self.store_seconds = Histogram("tgsync_store_call_seconds", "Store round trips (one "
                                       "protocol call each) and their latency, by call", ["call"],
                                       buckets=STORE_BUCKETS, registry=r)
        self.store_errors = Counter("tgsync_store_errors", "Store calls that raised, by call",
                                    ["call"], registry=r)
        self.welcome_posts = Counter("tgsync_welcome_posts", "Messages posted into groups (the "
                                     "welcome with the registration button)", registry=r)
        self.private = Counter("tgsync_private_messages", "Private messages sent, by route "
                               "(deep_link: replies to the registration button) and whether "
                               "Telegram delivered them", ["route", "delivered"], registry=r)
        self.last_flush = Gauge("tgsync_last_flush_seconds", "How long the last last_seen "
                                "flush took (retries included)", registry=r,
                                multiprocess_mode="mostrecent")
        self.last_flush_at = Gauge("tgsync_last_flush_timestamp_seconds",
                                   "When the last last_seen flush ended (Unix time)", registry=r,
                                   multiprocess_mode="max")
        # serve reads its pipeline's retry count when scraped; a worker counts its task retries
        self.retries = (Counter("tgsync_retries", "Tasks retried (store outage, lost race)",
                                registry=r) if role == "worker" else None)
        self.applying: Optional[type] = None  # the type of the event being applied
        self._children: Dict[Tuple[str, str], Any] = {}

    def count_event(self, event: Any, outcome: str) -> None:
        key = (route_of(event), outcome)
        child = self._children.get(key)
        if child is None:
            assert self.events is not None
            child = self._children[key] = self.events.labels(*key)
        child.inc()

    def observer(self) -> Any:
        return self.tally if self.tally is not None else PipelineObserver(self)

    def timed_store(self, store: Any) -> "TimedStore":
        return TimedStore(store, self)

    def counted_gateway(self, gateway: Any) -> "CountedGateway":
        return CountedGateway(gateway, self)

    def add_collector(self, collector: Any) -> None:
        self.registry.register(collector)


def add_build_info(registry: CollectorRegistry, role: str) -> None:
    Info("tgsync_build", "tgsync's version and runtime", registry=registry).info(
        {"version": __version__, "python": platform.python_version(), "role": role})
    ProcessCollector(registry=registry)  # process_start_time_seconds, memory, CPU


EVENTS_DOC = "Events taken off the work queue, by route and outcome (applied, skipped, failed)"


class EventTally:
    """Serve's observer of its pipeline (runtime/pipeline.py `Observer`): outcomes by route as
    plain integers, bumped by the one worker thread and read when scraped. A known member's
    message costs one integer increment here, no lock and no label lookup."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self.messages_applied = 0
        self.counts: Dict[Tuple[str, str], int] = {}

    def applying(self, item: Any) -> None:
        self.m.applying = type(item)

    def applied(self, item: Any) -> None:
        if type(item) is MessageSeen:
            self.messages_applied += 1
        else:
            self._count(item, "applied")
        self.m.applying = None

    def failed(self, item: Any, reason: str) -> None:
        self._count(item, "failed")
        self.m.applying = None

    def skipped(self, item: Any) -> None:
        self._count(item, "skipped")

    def flushed(self, seconds: float) -> None:
        self.m.last_flush.set(seconds)
        self.m.last_flush_at.set(time.time())

    def _count(self, item: Any, outcome: str) -> None:
        key = (route_of(item), outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def describe(self) -> List[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("tgsync_events", EVENTS_DOC, labels=["route", "outcome"])
        counts = dict(self.counts)
        key = ("message_activity", "applied")
        counts[key] = counts.get(key, 0) + self.messages_applied
        for (route, outcome), n in sorted(counts.items()):
            family.add_metric([route, outcome], n)
        yield family


class PipelineObserver:
    """A worker's observer: outcomes by route into prometheus_client's counters (a prefork
    child's reach its parent through the multiprocess files); remembers what is being applied,
    so a reply can be told apart from a welcome."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def applying(self, item: Any) -> None:
        self.m.applying = type(item)

    def applied(self, item: Any) -> None:
        self.m.count_event(item, "applied")
        self.m.applying = None

    def failed(self, item: Any, reason: str) -> None:
        self.m.count_event(item, "failed")
        self.m.applying = None

    def skipped(self, item: Any) -> None:
        self.m.count_event(item, "skipped")

    def flushed(self, seconds: float) -> None:
        self.m.last_flush.set(seconds)
        self.m.last_flush_at.set(time.time())

    def retried(self, item: Any) -> None:
        if self.m.retries is not None:
            self.m.retries.inc()


class TimedStore:
    """The store, with each protocol call timed into the latency histogram. Only the slow path
    reaches the store, so the hot path never pays for this. Attributes read and written go to
    the store itself (tests and fault injection set hooks on it)."""

    def __init__(self, store: Any, metrics: Metrics) -> None:
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_m", metrics)
        object.__setattr__(self, "_timed", {})

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name.startswith("_") or name in UNTIMED or not callable(attr):
            return attr
        timed = self._timed.get(name)
        if timed is None:
            timed = self._timed[name] = _timer(self._store, name, self._m)
        return timed

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._store, name, value)

    @property
    def unwrapped(self) -> Any:
        return self._store


def _timer(store: Any, name: str, m: Metrics) -> Callable[..., Any]:
    seconds = m.store_seconds.labels(name)
    errors = m.store_errors.labels(name)

    def call(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return getattr(store, name)(*args, **kwargs)
        except BaseException:
            errors.inc()
            raise
        finally:
            seconds.observe(time.perf_counter() - began)
    return call


class CountedGateway:
    """The Telegram gateway, counting what the bot sends: welcome posts, private replies."""

    def __init__(self, gateway: Any, metrics: Metrics) -> None:
        self._gw = gateway
        self._m = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gw, name)

    def send_group_message(self, chat_id: int, text: str, button_text: Optional[str] = None,
                           button_url: Optional[str] = None) -> None:
        self._gw.send_group_message(chat_id, text, button_text, button_url)
        self._m.welcome_posts.inc()

    def send_private(self, user_id: int, text: str) -> bool:
        delivered = self._gw.send_private(user_id, text)
        route = "deep_link" if self._m.applying is DeepLinkStart else "other"
        self._m.private.labels(route, "true" if delivered else "false").inc()
        return delivered


# -- read when scraped ------------------------------------------------------------------------------
def spool_figures(path: Optional[Path]) -> Tuple[int, int]:
    """(lines, bytes) of the spool file; (0, 0) when there is none."""
    if path is None:
        return 0, 0
    try:
        size = path.stat().st_size
        lines = 0
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                lines += chunk.count(b"\n")
        return lines, size
    except OSError:
        return 0, 0


class DriftReader:
    """Reconcile drift per club from the club documents (`sync.drift`, `sync.last_sync`, written
    by the last `reconcile`, whichever process ran it). One store query, at most once a
    minute, whatever the scrape interval; the last figures stand while the store is down."""

    def __init__(self, store: Any, refresh_seconds: float = DRIFT_REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()
        self.figures: List[Tuple[str, Optional[float], Optional[float]]] = []

    def read(self) -> List[Tuple[str, Optional[float], Optional[float]]]:
        with self._lock:
            if self._clock() >= self._next:
                self._next = self._clock() + self.refresh_seconds
                try:
                    self.figures = [(c["_id"], _num((c.get("sync") or {}).get("drift")),
                                     _when((c.get("sync") or {}).get("last_sync")))
                                    for c in self.store.club_index().clubs]
                except Exception as exc:  # the store's outage shows on /readyz, not here
                    log.debug("drift not re-read: %s", type(exc).__name__)
            return self.figures


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _when(v: Any) -> Optional[float]:
    from datetime import datetime, timezone

    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).timestamp()
    return None


class ServeFigures:
    """The figures of a running serve read at scrape time (a prometheus_client collector)."""

    def __init__(self, runtime: Any, *, spool_path: Optional[Path] = None,
                 drift: Optional[DriftReader] = None, health: Any = None) -> None:
        self.runtime = runtime
        self.spool_path = spool_path
        self.drift = drift
        self.health = health

    def describe(self) -> List[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        rt, pipeline = self.runtime, self.runtime.pipeline
        updates = CounterMetricFamily("tgsync_updates_received", "Telegram updates received, by "
                                      "kind", labels=["kind"])
        for kind, n in sorted(dict(rt.received).items()):
            updates.add_metric([kind], n)
        yield updates
        last = rt.last_update
        yield _gauge("tgsync_last_update_timestamp_seconds", "When the newest update arrived "
                     "(Unix time; 0: none yet)", last or 0.0)
        yield _gauge("tgsync_newest_update_age_seconds", "Seconds since the newest update arrived "
                     "(since serving began, when none has)", time.time() - (last or rt.serving_since
                                                                             or time.time()))
        yield _gauge("tgsync_started_timestamp_seconds", "When serving began (Unix time; 0: still "
                     "starting): connected to Telegram, start-up check done", rt.serving_since or 0.0)
        yield _gauge("tgsync_work_backlog", "Events accepted and not yet applied (in-process queue; "
                     "the broker's queue with Celery)", max(pipeline.backlog(), 0))
        yield CounterMetricFamily("tgsync_retries", "Store calls retried (outage, lost race)",
                                  value=getattr(pipeline, "retries", 0))
        lines, size = spool_figures(self.spool_path)
        yield _gauge("tgsync_spool_lines", "Lines in the spool file: events and last_seen kept on "
                     "disk for the next start", lines)
        yield _gauge("tgsync_spool_bytes", "Size of the spool file", size)
        yield _gauge("tgsync_store_down", "1 while the worker is waiting out a store outage",
                     1 if getattr(pipeline, "store_down", False) else 0)
        available = getattr(rt.engine.cache, "available", None)  # only the Redis member cache
        if available is not None:
            up = available() if callable(available) else available
            yield _gauge("tgsync_redis_degraded", "1 while the Redis member cache is unreachable "
                         "and work goes on against the store", 0 if up else 1)
        if self.health is not None:
            ready, _ = self.health.readiness()
            yield _gauge("tgsync_ready", "1 when /readyz answers 200", 1 if ready else 0)
        if self.drift is not None:
            drift = GaugeMetricFamily("tgsync_reconcile_drift", "Telegram's member count against "
                                      "the club's active members at the last reconcile",
                                      labels=["club"])
            at = GaugeMetricFamily("tgsync_reconcile_timestamp_seconds", "When the club was last "
                                   "reconciled (Unix time)", labels=["club"])
            for club, d, when in self.drift.read():
                if d is not None:
                    drift.add_metric([club], d)
                if when is not None:
                    at.add_metric([club], when)
            yield drift
            yield at


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
