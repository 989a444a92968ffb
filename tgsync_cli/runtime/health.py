"""Liveness and readiness of a running `serve` or `worker`, as a supervisor probes them.

Liveness (/healthz) asks "should this process be restarted?": the update loop answers a
callback, and the worker makes progress — it finished an event or retried one within
`stuck_seconds` whenever work is pending. A store outage is not a liveness failure: the worker
retries (every 30 s at most), and restarting would only lose the in-memory buffers.

Readiness (/readyz) asks "is it doing its job now?": connected to Telegram, the start-up check
done, and the store answering. The store is asked by a prober thread of its own (one cheap
query every `probe_seconds`), so a probe never waits on a hung database; the handler only reads
what the prober last saw.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional, Tuple

from tgsync_cli.runtime.config import redact

Verdict = Tuple[bool, str]


def one_line(exc: BaseException, limit: int = 200) -> str:
    text = redact(" ".join(str(exc).split())) or type(exc).__name__
    return text[:limit]


class Progress:
    """Stuck = work pending and the progress mark unchanged for `stuck_seconds`. The mark is
    any value that changes whenever the worker gets something done (or retries)."""

    def __init__(self, mark: Callable[[], Any], pending: Callable[[], int], stuck_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._mark, self._pending = mark, pending
        self.stuck_seconds = stuck_seconds
        self._clock = clock
        self._last: Any = object()
        self._since = clock()
        self._lock = threading.Lock()

    def stuck_for(self) -> Optional[float]:
        """Seconds without progress while work is pending, once past the threshold; else None."""
        with self._lock:
            now, mark = self._clock(), self._mark()
            if mark != self._last:
                self._last, self._since = mark, now
                return None
            if self._pending() <= 0:
                self._since = now  # idle is not stuck
                return None
            waited = now - self._since
            return waited if waited >= self.stuck_seconds else None


def loop_answers(loop: Optional[Any], timeout: float = 2.0) -> bool:
    """True when the asyncio loop runs a callback within `timeout`: it is not blocked."""
    if loop is None:
        return True
    if loop.is_closed():
        return False
    done = threading.Event()
    try:
        loop.call_soon_threadsafe(done.set)
    except RuntimeError:  # closed between the check and the call
        return False
    return done.wait(timeout)


class StoreProbe:
    """Asks the store one cheap question every `probe_seconds` in a thread of its own."""

    def __init__(self, store: Any, probe_seconds: float = 10.0) -> None:
        self.store = store
        self.probe_seconds = probe_seconds
        self.ok: Optional[bool] = None  # None: not asked yet
        self.reason = "store not asked yet"
        self.latency: Optional[float] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def check(self) -> bool:
        began = time.perf_counter()
        try:
            self.store.club_by_group(0)  # an indexed lookup of a group that cannot exist
        except Exception as exc:
            self.ok, self.reason = False, f"store unavailable: {one_line(exc)}"
            return False
        self.latency = time.perf_counter() - began
        self.ok, self.reason = True, "store answered"
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tgsync-store-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.probe_seconds)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)


def telegram_connected(client: Any) -> bool:
    """pyrogram restarts its session after a network drop; `is_started` is clear meanwhile. A
    client without a session object (a stand-in) counts as connected once started."""
    session = getattr(client, "session", None)
    started = getattr(session, "is_started", None)
    if started is not None and hasattr(started, "is_set"):
        return bool(started.is_set())
    return bool(getattr(client, "is_connected", True))


class ServeHealth:
    """/healthz and /readyz of a running serve (runtime/serve.py Runtime)."""

    def __init__(self, runtime: Any, probe: StoreProbe, stuck_seconds: float = 120.0,
                 loop_timeout: float = 2.0) -> None:
        self.runtime = runtime
        self.probe = probe
        self.loop_timeout = loop_timeout
        pipeline = runtime.pipeline
        self.progress: Optional[Progress] = None
        if hasattr(pipeline, "done"):  # the in-process worker thread (Celery's are elsewhere)
            self.progress = Progress(lambda: (pipeline.done, pipeline.retries), pipeline.backlog,
                                     stuck_seconds)

    def liveness(self) -> Verdict:
        rt = self.runtime
        if not loop_answers(rt.loop, self.loop_timeout):
            return False, f"update loop did not answer within {self.loop_timeout:g}s"
        alive = getattr(rt.pipeline, "worker_alive", None)
        if rt.started.is_set() and rt.accepting and alive is not None and not alive():
            return False, "worker thread has stopped"
        if self.progress is not None:
            stuck = self.progress.stuck_for()
            if stuck is not None:
                return False, (f"worker stuck: no event done for {stuck:.0f}s with "
                               f"{rt.pipeline.backlog()} pending")
        return True, "ok"

    def readiness(self) -> Verdict:
        rt = self.runtime
        if not rt.accepting:
            return False, "stopping: draining pending work"
        if not rt.started.is_set():
            return False, "starting: connecting to Telegram and checking the bot's status in every club"
        if not telegram_connected(rt.client):
            return False, "Telegram connection lost: reconnecting"
        if self.probe.ok is False:
            return False, self.probe.reason
        if getattr(rt.pipeline, "store_down", False):
            return False, f"store unavailable: the worker is retrying ({rt.pipeline.backlog()} pending)"
        if self.probe.ok is None:
            return False, "starting: store not asked yet"
        return True, "ready"
