"""`worker --metrics`: /healthz, /readyz and /metrics of a Celery worker.

The endpoint runs in the worker's main process. With the prefork pool the tasks run in child
processes, so their counters are kept the way prometheus_client does it for forking servers: in
a private directory of per-process files (PROMETHEUS_MULTIPROC_DIR, set before prometheus_client
is first imported and before Celery forks) that the main process adds up when scraped. With the
solo or threads pool the tasks run in the main process and count into its registry directly.

Liveness: Celery's own bookkeeping in the main process (tasks accepted, tasks running) must move
within `stuck_seconds` while tasks are running or reserved. Readiness: the consumer has started,
and the broker and the store answered the last probe.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import Any, Callable, Iterator, List, Optional

from tgsync_cli.runtime.config import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(pool: str) -> Optional[str]:
    """For the prefork pool: a private directory for the children's figures. Must run before
    prometheus_client is imported in this process (it picks its value store at import)."""
    if pool != "prefork":
        return None
    import sys

    if "prometheus_client" in sys.modules and not os.environ.get(MULTIPROC_ENV):
        raise RuntimeError("prometheus_client was imported before the worker's metrics were set up")
    path = tempfile.mkdtemp(prefix="tgsync-worker-metrics-")  # 0700: figures are the operator's
    os.environ[MULTIPROC_ENV] = path
    return path


class FreshStore:
    """A store opened for one question and closed again: the probe thread must not hold a
    connection that Celery's children would inherit across fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def club_by_group(self, chat_id: int) -> Any:
        from tgsync_cli.runtime.wiring import store_from

        store = store_from(self.settings)  # as the worker's own engine opens it
        try:
            return store.club_by_group(chat_id)
        finally:
            store.close()


class WorkerHealth:
    def __init__(self, settings: Settings, stuck_seconds: float, probe_seconds: float = 10.0) -> None:
        from celery.worker import state

        from tgsync_cli.runtime.health import Progress, StoreProbe

        self.settings = settings
        self.consuming = threading.Event()  # Celery's worker_ready
        self.probe = StoreProbe(FreshStore(settings), probe_seconds)
        self.broker_reason: Optional[str] = "broker not asked yet"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.progress = Progress(
            lambda: (state.all_total_count[0], tuple(sorted(r.id for r in list(state.active_requests)))),
            lambda: len(state.active_requests) + len(state.reserved_requests), stuck_seconds)

    def backlog(self) -> int:
        """Tasks waiting in the broker's queue (every worker's), -1 when Redis does not answer."""
        import redis

        from tgsync_cli.runtime.celery_queue import QUEUE

        try:
            client = redis.Redis.from_url(self.settings.queue.broker_url, socket_timeout=2.0,
                                          socket_connect_timeout=2.0)
            try:
                return int(client.llen(QUEUE))
            finally:
                client.close()
        except Exception:
            return -1

    def _check_broker(self) -> None:
        import redis

        from tgsync_cli.runtime.health import one_line

        try:
            client = redis.Redis.from_url(self.settings.queue.broker_url, socket_timeout=2.0,
                                          socket_connect_timeout=2.0)
            try:
                client.ping()
            finally:
                client.close()
            self.broker_reason = None
        except Exception as exc:
            self.broker_reason = f"broker unavailable: {one_line(exc)}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tgsync-worker-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._check_broker()
            self.probe.check()
            self._stop.wait(self.probe.probe_seconds)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def liveness(self) -> tuple:
        stuck = self.progress.stuck_for()
        if stuck is not None:
            return False, f"worker stuck: no task done for {stuck:.0f}s with tasks running"
        return True, "ok"

    def readiness(self) -> tuple:
        if not self.consuming.is_set():
            return False, "starting: connecting to the broker"
        if self.broker_reason:
            return False, self.broker_reason
        if self.probe.ok is False:
            return False, self.probe.reason
        if self.probe.ok is None:
            return False, "starting: store not asked yet"
        return True, "ready"


class WorkerFigures:
    """Read when scraped, in the main process: the broker's backlog and readiness."""

    def __init__(self, health: WorkerHealth) -> None:
        self.health = health

    def describe(self) -> List[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        yield GaugeMetricFamily("tgsync_work_backlog", "Tasks waiting in the broker's queue "
                                "(every worker's; -1: Redis did not answer)", value=self.health.backlog())
        ready, _ = self.health.readiness()
        yield GaugeMetricFamily("tgsync_ready", "1 when /readyz answers 200", value=1 if ready else 0)


SCRAPE_TRIES = 3


def tolerant_multiprocess_collector(registry: Any, path: str) -> Any:
    """prometheus_client's adder of the children's files, made to bear a child writing one.

    A prefork child creates its file (empty, then sized, then filled) while the main process may
    be reading the directory: read at that moment, the file fails to parse and the whole scrape
    answered 500. A file that cannot be read yet holds nothing counted yet, so it is left out of
    this scrape; one that changes while being added is read again (a few tries)."""
    import glob
    import struct
    import time

    from prometheus_client import multiprocess
    from prometheus_client.mmap_dict import MmapedDict

    unreadable = (struct.error, RuntimeError, OSError, UnicodeDecodeError, ValueError)

    def readable(f: str) -> bool:
        try:
            list(MmapedDict.read_all_values_from_file(f))
            return True
        except unreadable:
            return False

    class Tolerant(multiprocess.MultiProcessCollector):
        def collect(self) -> Any:
            for attempt in range(SCRAPE_TRIES):
                files = [f for f in glob.glob(os.path.join(path, "*.db")) if readable(f)]
                try:
                    return self.merge(files, accumulate=True)
                except unreadable:
                    if attempt == SCRAPE_TRIES - 1:
                        raise
                    time.sleep(0.01)
            return []

    return Tolerant(registry, path=path)


class WorkerEndpoint:
    """The main process's endpoint; `tasks_metrics` makes the counters of a process that runs
    tasks (the main process with solo/threads, each child with prefork)."""

    def __init__(self, settings: Settings, host: str, port: int, multiproc_dir: Optional[str],
                 probe_seconds: float = 10.0) -> None:
        from prometheus_client import CollectorRegistry

        from tgsync_cli.runtime.endpoint import Endpoint, describe
        from tgsync_cli.runtime.metrics import Metrics, add_build_info

        self.multiproc_dir = multiproc_dir
        self.health = WorkerHealth(settings, settings.metrics.stuck_seconds, probe_seconds)
        self._local: Optional[Metrics] = None
        if multiproc_dir:
            registry = CollectorRegistry()
            tolerant_multiprocess_collector(registry, multiproc_dir)
            add_build_info(registry, "worker")
        else:
            self._local = Metrics("worker")
            registry = self._local.registry
        registry.register(WorkerFigures(self.health))
        self.endpoint = Endpoint(host, port, registry, self.health.liveness, self.health.readiness)
        self.note = describe(host, self.endpoint.port)

    def tasks_metrics(self) -> Any:
        """The Metrics a process that runs tasks counts into (called in that process)."""
        if self._local is not None:
            return self._local
        from tgsync_cli.runtime.metrics import Metrics

        return Metrics("worker", exposed=False)  # values go to this process's files

    def start(self) -> None:
        self.health.start()
        self.endpoint.start()

    def close(self) -> None:
        self.endpoint.close()
        self.health.close()
        if self.multiproc_dir:
            shutil.rmtree(self.multiproc_dir, ignore_errors=True)


def consuming_signal(health: WorkerHealth) -> Callable[..., None]:
    def ready(**_kwargs: Any) -> None:
        health.consuming.set()
    return ready
