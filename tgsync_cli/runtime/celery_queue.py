"""The work queue on Celery with a Redis broker: `serve` processes enqueue, `tgsync worker`s apply.

Why this is safe with at-least-once delivery and no global order: every event carries
Telegram's time, and the store applies member changes as guarded single-document updates
(`status_at`/`role_at`, atomic insert-if-absent, departure tombstones), so applying an event
twice, or any permutation of the same events, ends in the same document. That is why
there is ONE queue (`tgsync`) consumed by any number of workers with any concurrency, instead of
per-member routing: per-member routing would need exactly one single-threaded consumer per
shard to mean anything, and would buy nothing the guards do not already give. Tasks are
acknowledged late and re-queued if a worker dies, so nothing accepted is lost.

The hot path never crosses the queue: `CeleryPipeline.submit` applies a message from a member
the (shared) member cache knows to be active in-process — a dict lookup and a `last_seen` note —
and enqueues only the slow path (unknown writers, joins, leaves, imports, deep links, reconcile).
Use `cache.backend = "redis"` with this queue, so members created by a worker are hot in every
`serve` process at once.

Settings come from the usual places (`tgsync.toml`, `TGSYNC_*` environment): a worker started
as `celery -A tgsync_cli.runtime.celery_queue worker` reads `queue.broker_url` and `store.uri` from them;
`tgsync worker` passes the settings it loaded via `configure`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any, Callable, Dict, Optional, Tuple

from celery import Celery, signals

from tgsync_cli.core.codec import from_dict, to_dict
from tgsync_cli.core.errors import (
    ConfigError,
    InputError,
    StoreConflict,
    StoreUnavailable,
    TgsyncError,
)
from tgsync_cli.core.events import MessageSeen
from tgsync_cli.runtime.club_wait import CLUB_WAIT_SECONDS, RECHECK_SECONDS, waits_for_club
from tgsync_cli.runtime.config import Settings, load_settings
from tgsync_cli.runtime.spool import SeenNote, Spool, merge_note, seen_docs

log = logging.getLogger("tgsync.queue")

QUEUE = "tgsync"
DEFAULT_BROKER = "redis://127.0.0.1:6379/1"

app = Celery("tgsync")
app.conf.update(
    broker_url=os.environ.get("TGSYNC_QUEUE_BROKER_URL", DEFAULT_BROKER),
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,  # a task is acknowledged after it ran: a dead worker's task is redelivered
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    broker_transport_options={"visibility_timeout": 3600},
)

_settings: Optional[Settings] = None
_engine = None
_engine_pid: Optional[int] = None
_engine_lock = threading.RLock()
_gateway_factory: Optional[Callable[[Settings], Any]] = None
# `worker --metrics`: makes the counters of a process that runs tasks; and their observer
_metrics_setup: Optional[Callable[[], Any]] = None
_observer: Any = None


def _tell(what: str, *args: Any) -> None:
    if _observer is not None:
        getattr(_observer, what)(*args)


def configure(settings: Settings) -> None:
    """Use these settings for the broker and for the worker's engine (store, cache, flush)."""
    global _settings
    _settings = settings
    app.conf.broker_url = settings.queue.broker_url


def set_gateway_factory(factory: Optional[Callable[[Settings], Any]]) -> None:
    """Let `serve`'s wiring give workers a live Telegram gateway (default: offline, so steps that
    need Telegram — welcome DMs, listings — are reported as skipped, never faked)."""
    global _gateway_factory
    _gateway_factory = factory


def current_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def _default_gateway(settings: Settings):
    from tgsync_cli.core.gateway import OfflineGateway

    bot_id = None
    token = settings.telegram.bot_token
    if token and token.split(":", 1)[0].isdigit():
        bot_id = int(token.split(":", 1)[0])  # the bot never becomes a member, even offline
    return OfflineGateway(bot_id, settings.telegram.bot_username)


def worker_engine():
    """One engine per worker process, built on first use (after the fork: a store connection
    must never be shared across processes) and reused by every task in that process."""
    global _engine, _engine_pid, _observer
    with _engine_lock:
        if _engine is not None and _engine_pid == os.getpid():
            return _engine
        from tgsync_cli.runtime.wiring import make_engine, store_from

        settings = current_settings()
        store = store_from(settings)
        gateway = (_gateway_factory or _default_gateway)(settings)
        if _metrics_setup is not None:  # store calls timed, outcomes counted, in this process
            from tgsync_cli.runtime.observe import instrument

            metrics = _metrics_setup()
            store, gateway = instrument(metrics, store, gateway)
            _observer = metrics.observer()
        _engine = make_engine(store, gateway, settings)
        _engine_pid = os.getpid()
        _start_flush_timer(_engine, settings.sync.last_seen_flush_seconds)
        return _engine


_watch: Any = None  # this worker process's look at `forget` runs (see _forgets)


def _forgets(engine) -> Any:
    """A `forget` run elsewhere reaches a worker as it reaches replay: every second the worker
    reads the store's new notes; a queued event about the person, from before the erasure, is
    dropped, and what this worker applied for them since its last look is erased again."""
    global _watch
    if _watch is None or _watch.engine is not engine:
        from tgsync_cli.runtime.forget_filter import ForgetFilter

        _watch = ForgetFilter(engine)
    return _watch


def _start_flush_timer(engine, seconds: float) -> None:
    def loop():
        while True:
            time.sleep(seconds)
            flush_worker_engine(engine)

    threading.Thread(target=loop, name="tgsync-last-seen-flush", daemon=True).start()


def flush_worker_engine(engine=None) -> int:
    engine = engine or _engine
    if engine is None:
        return 0
    with _engine_lock:
        try:
            began = time.monotonic()
            watch = _forgets(engine)
            watch.flushing(engine.seen.people())
            written = engine.flush()
            _tell("flushed", time.monotonic() - began)
        except TgsyncError as exc:  # kept in memory by the engine; the next flush retries
            log.warning("last_seen not flushed: %s", exc)
            return 0
        try:
            watch.poll()  # a forget that landed during the flush: erased again now
        except TgsyncError as exc:
            log.warning("forget notes not read after a flush, read at the next look: %s", exc)
        return written


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _flush_on_shutdown(**_kwargs) -> None:
    if _engine is not None and _engine_pid == os.getpid():
        flush_worker_engine(_engine)


# A store outage waits (1, 2, 4 … up to 60 s, jittered so that workers do not return at once);
# a lost race with another worker is tried again too: doing it again finds the winner's row.
RETRIED = (StoreUnavailable, StoreConflict)


@app.task(name="tgsync.apply_event", bind=True, acks_late=True, max_retries=None,
          autoretry_for=RETRIED, retry_backoff=1, retry_backoff_max=60, retry_jitter=True)
def apply_event(self, event_dict: dict) -> str:
    """Apply one event; safe to run twice or out of order (its Telegram time decides)."""
    try:
        event = from_dict({k: v for k, v in event_dict.items() if k != "_club_wait"})
    except InputError as exc:
        log.error("dropped a malformed task: %s", exc)  # retrying cannot make it valid
        _tell("skipped", None)
        return "invalid"
    engine = worker_engine()
    _tell("applying", event)
    try:
        with _engine_lock:
            kept = _forgets(engine).keep(event)
            if kept is not None:
                engine.handle(kept)
    except RETRIED:
        _tell("retried", event)
        raise  # Celery retries it, backing off
    except Exception as exc:
        _tell("failed", event, type(exc).__name__)
        if isinstance(exc, TgsyncError):  # a refused event must not be retried forever
            log.error("event %s not applied: %s", type(event).__name__, exc)
            return "refused"
        raise
    if kept is None:  # about a person `forget` erased after this was queued
        _tell("skipped", event)
        return "forgotten"
    _tell("applied", event)
    waited = (event_dict.get("_club_wait") or 0) if isinstance(event_dict, dict) else 0
    if waited < CLUB_WAIT_SECONDS and waits_for_club(engine, event):
        # no club yet: another worker may be writing it from "bot added" right now; asked again
        # shortly (a new task, so the wait does not count against store-outage retries)
        apply_event.apply_async(args=[{**event_dict, "_club_wait": waited + RECHECK_SECONDS * 4}],
                                queue=QUEUE, countdown=RECHECK_SECONDS * 4)
        return "waiting for its club"
    return type(event).__name__


class CeleryPipeline:
    """Same interface as pipeline.Pipeline (submit/start/stop/backlog), but the slow path is
    enqueued for `tgsync worker`s instead of applied in this process."""

    def __init__(self, engine, *, settings: Optional[Settings] = None, max_pending: int = 10000,
                 flush_seconds: float = 900.0, spool_path: Optional[str] = None,
                 queue: str = QUEUE):
        self.engine = engine
        if settings is not None:
            configure(settings)
        self.queue = queue
        self.max_pending = max_pending
        self._flush_seconds = flush_seconds
        self._spool = Spool(spool_path) if spool_path else None
        self._spool_lock = threading.RLock()
        self._checkpointed: dict = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._timer: Optional[threading.Thread] = None
        self._redis: Any = None
        self.applied = 0  # hot-path events applied here
        self.enqueued = 0
        self.spooled = 0

    # -- producer side --------------------------------------------------------------------------
    def submit(self, event: Any, timeout: Optional[float] = None) -> None:
        if self._is_hot(event):
            with self._lock:
                self.engine.handle(event)  # a dict lookup and a last_seen note: no round trip
            self.applied += 1
            return
        payload = to_dict(event)
        try:
            self._enqueue(payload)
        except Exception as exc:  # broker down: keep the event on disk, never drop it
            if self._spool is None:
                raise StoreUnavailable(f"work queue unavailable ({type(exc).__name__}) and no spool "
                                       "file configured") from exc
            self._append_spool([payload])
            log.warning("work queue unavailable (%s); event spooled to %s", type(exc).__name__,
                        self._spool.path)

    def _enqueue(self, payload: dict) -> None:
        apply_event.apply_async(args=[payload], queue=self.queue, retry=True,
                                retry_policy={"max_retries": 3, "interval_start": 0.2,
                                              "interval_step": 0.5, "interval_max": 2.0})
        self.enqueued += 1

    def _is_hot(self, ev: Any) -> bool:
        if type(ev) is not MessageSeen:
            return False
        s = ev.sender
        if s is None or ev.sender_chat_id is not None or ev.is_automatic_forward:
            return False
        info = self.engine.directory.known(ev.chat.id)  # memory only; unknown chats go to a worker
        return info is not None and self.engine.cache.is_active(info.club_id, s.id)

    def backlog(self) -> int:
        """Tasks waiting in the broker (every worker's, not only this process's)."""
        try:
            return int(self._client().llen(self.queue))
        except Exception:
            return -1

    def _client(self):
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(app.conf.broker_url, socket_timeout=5.0)
        return self._redis

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> int:
        """Enqueue what the last run spooled, then run the last_seen flush timer."""
        replayed = self._replay_spool()
        self._timer = threading.Thread(target=self._flush_loop, name="tgsync-flush", daemon=True)
        self._timer.start()
        return replayed

    def stop(self, timeout: float = 30.0) -> int:
        """Flush last_seen (spooled instead when the store cannot take it). Enqueued work is
        durable in the broker, so nothing else is left here except what is spooled (returned,
        as Pipeline.stop returns what it spooled)."""
        self._stopping.set()
        if self._timer is not None:
            self._timer.join(min(timeout, 5.0))
        self._flush("last_seen not flushed at shutdown (%s): spooled for the next start")
        return self.spooled

    def _flush(self, failed: str) -> None:
        """Write last_seen to the store; when it cannot take it, log `failed` (with the cause)
        and checkpoint it to the spool instead."""
        try:
            with self._lock:
                self.engine.flush()
            self._compact_spool()
        except TgsyncError as exc:
            log.warning(failed, exc)
            self._checkpoint()

    def _flush_loop(self) -> None:
        """Checkpoint last_seen to the spool often (kill -9 loses at most one interval of it),
        write it to the store every flush interval."""
        next_flush = time.monotonic() + self._flush_seconds
        while not self._stopping.wait(min(self.checkpoint_seconds, self._flush_seconds)):
            if time.monotonic() < next_flush:
                self._checkpoint()
                continue
            next_flush = time.monotonic() + self._flush_seconds
            self._flush("last_seen flush failed, kept for the next one: %s")

    # -- spool ------------------------------------------------------------------------------------
    checkpoint_seconds = 5.0

    def _append_spool(self, payloads) -> None:
        assert self._spool is not None, "only a queue with a spool spools"
        with self._spool_lock:
            self.spooled += self._spool.append(payloads)

    def _newest(self) -> Dict[Tuple[str, int], datetime]:
        """The newest buffered message per member, as the seen-buffer holds it now."""
        return {k: t.last for k, t in self.engine.seen.times().items()}

    def _checkpoint(self) -> None:
        if self._spool is None:
            return
        with self._lock:
            changed = {k: v for k, v in self._newest().items() if self._checkpointed.get(k) != v}
        if changed:
            self._append_spool(seen_docs(changed))
            self._checkpointed.update(changed)

    def _compact_spool(self) -> None:
        """After a store flush the spool's last_seen lines are done; events stay until enqueued."""
        if self._spool is None:
            return
        with self._spool_lock:
            if not self._spool.exists():
                return
            items, _ = self._spool.load(from_dict)
            keep = [to_dict(i) for i in items if not isinstance(i, SeenNote)]
            with self._lock:
                newest = self._newest()
                keep += seen_docs(newest)
                self._checkpointed = newest
            self._spool.rewrite(keep)

    def _replay_spool(self) -> int:
        """Enqueue what the spool holds; the file is rewritten with what could not be enqueued
        only after every attempt (never deleted first), and a line that cannot be read goes to
        `<spool>.bad` with its line number."""
        if self._spool is None:
            return 0
        with self._spool_lock:
            items, _bad = self._spool.load(from_dict)
            if not items:
                return 0
            left, sent, down = [], 0, False
            for item in items:
                if isinstance(item, SeenNote):
                    with self._lock:
                        merge_note(self.engine.seen, item)
                    left.append(item)  # until the store has it
                    continue
                if down:  # one failure is enough: the broker is down, keep the rest as it is
                    left.append(item)
                    continue
                try:
                    if self._is_hot(item):
                        with self._lock:
                            self.engine.handle(item)
                    else:
                        self._enqueue(to_dict(item))
                    sent += 1
                except Exception as exc:
                    log.warning("work queue unavailable (%s); spooled events kept in %s",
                                type(exc).__name__, self._spool.path)
                    left.append(item)
                    down = True
            self._spool.rewrite([to_dict(i) if not isinstance(i, SeenNote) else
                                 seen_docs({(i.club_id, i.telegram_id): i.at})[0] for i in left])
            self._checkpointed = self._newest()
            self.spooled = sum(1 for i in left if not isinstance(i, SeenNote))
        return sent


def run_worker(settings: Settings, concurrency: int = 1, pool: str = "prefork",
               loglevel: str = "INFO", quiet: bool = False,
               listen: Optional[Tuple[str, int]] = None) -> None:
    """Start a Celery worker for this app on the `tgsync` queue (blocks until shutdown).
    `quiet` drops Celery's banner (JSON logs must stay JSON); `listen` (host, port) serves
    /healthz, /readyz and /metrics."""
    global _metrics_setup
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    configure(settings)
    endpoint = None
    if listen is not None:
        from tgsync_cli.runtime import worker_metrics

        endpoint = worker_metrics.WorkerEndpoint(settings, *listen, worker_metrics.prepare(pool))
        _metrics_setup = endpoint.tasks_metrics
        signals.worker_ready.connect(worker_metrics.consuming_signal(endpoint.health), weak=False)
        endpoint.start()
        log.info("health and metrics: %s", endpoint.note, extra={"event": "metrics"})
    try:
        _worker_main(concurrency, pool, loglevel, quiet)
    finally:
        if endpoint is not None:
            endpoint.close()


def _worker_main(concurrency: int, pool: str, loglevel: str, quiet: bool) -> None:
    app.worker_main([*(["--quiet"] if quiet else []), "worker", f"--concurrency={concurrency}",
                     f"--pool={pool}", "-Q", QUEUE, f"--loglevel={loglevel}", "--without-gossip",
                     "--without-mingle"])
