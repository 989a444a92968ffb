"""The in-process work queue between Telegram's update loop and the engine.

Adapters hand events to `submit` and return at once (the update loop never waits on the store).
One worker thread applies them in arrival order. If the store is down, the event at the head
waits and is retried with backoff — nothing accepted is dropped — and at shutdown whatever is
still pending is written to a spool file that the next start replays first.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

from tgsync_cli.codec import from_dict, to_dict
from tgsync_cli.errors import StoreUnavailable, TgsyncError

log = logging.getLogger("tgsync.pipeline")
_STOP = object()
_FLUSH = object()


class Pipeline:
    def __init__(self, engine, *, max_pending: int = 10000, flush_seconds: float = 900.0,
                 spool_path: Optional[str] = None, backoff: tuple = (0.2, 30.0),
                 sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self._q: "queue.Queue[Any]" = queue.Queue(maxsize=max_pending)
        self._flush_seconds = flush_seconds
        self._spool = Path(spool_path) if spool_path else None
        self._backoff = backoff
        self._sleep = sleep
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self.applied = 0
        self.retries = 0
        self.failed: List[str] = []

    # -- producer side ----------------------------------------------------------------------------
    def submit(self, event: Any, timeout: Optional[float] = None) -> None:
        """Accept an event; blocks (backpressure) while the queue is full."""
        self._q.put(event, timeout=timeout)

    def backlog(self) -> int:
        return self._q.qsize()

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> int:
        """Replay the spool from the last shutdown first, then run the worker. Returns replayed count."""
        replayed = self._load_spool()
        self._thread = threading.Thread(target=self._run, name="tgsync-worker", daemon=True)
        self._thread.start()
        return replayed

    def stop(self, timeout: float = 30.0) -> int:
        """Drain what is pending (bounded by `timeout`), flush last_seen; spool what is left."""
        self._q.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(5.0)
        left = self._write_spool()
        try:
            self.engine.flush()
        except TgsyncError as exc:
            log.warning("last_seen not flushed at shutdown: %s", exc)
        return left

    # -- worker -----------------------------------------------------------------------------------
    def _run(self) -> None:
        next_flush = time.monotonic() + self._flush_seconds
        while True:
            try:
                item = self._q.get(timeout=min(1.0, self._flush_seconds))
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if time.monotonic() >= next_flush or item is _FLUSH:
                self._with_retry(self.engine.flush, "last_seen flush")
                next_flush = time.monotonic() + self._flush_seconds
            if item is None or item is _FLUSH:
                continue
            if not self._with_retry(lambda: self.engine.handle(item), type(item).__name__):
                self._pending_head = item
                return

    def _with_retry(self, fn: Callable[[], Any], what: str) -> bool:
        delay = self._backoff[0]
        while True:
            try:
                fn()
                if what != "last_seen flush":
                    self.applied += 1
                return True
            except StoreUnavailable as exc:
                self.retries += 1
                if self._stopping.is_set():
                    return False
                log.warning("store unavailable (%s); retrying %s in %.1fs, backlog %d",
                            exc, what, delay, self.backlog())
                self._sleep(delay)
                delay = min(delay * 2, self._backoff[1])
            except TgsyncError as exc:  # a refused event must not stop the loop
                self.failed.append(f"{what}: {exc}")
                log.error("event %s not applied: %s", what, exc)
                return True

    # -- spool ------------------------------------------------------------------------------------------
    _pending_head: Any = None

    def _write_spool(self) -> int:
        items = []
        if self._pending_head is not None:
            items.append(self._pending_head)
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item is not _FLUSH:
                items.append(item)
        if not items:
            return 0
        if self._spool is None:
            log.error("%d events pending at shutdown and no spool file configured", len(items))
            return len(items)
        self._spool.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._spool.with_suffix(".tmp")
        with tmp.open("a", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(to_dict(item)) + "\n")
        os.replace(tmp, self._spool)
        log.warning("%d pending events spooled to %s", len(items), self._spool)
        return len(items)

    def _load_spool(self) -> int:
        if self._spool is None or not self._spool.exists():
            return 0
        n = 0
        with self._spool.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    self._q.put(from_dict(json.loads(line)))
                    n += 1
        self._spool.unlink()
        return n
