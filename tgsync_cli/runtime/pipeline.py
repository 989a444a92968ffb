"""The in-process work queue between Telegram's update loop and the engine.

Adapters hand events to `submit` and return at once (the update loop never waits on the store).
One worker thread applies them in arrival order. If the store is down, the event at the head
waits and is retried with backoff — nothing accepted is dropped — and at shutdown whatever is
still pending is written to a spool file that the next start replays first.

Guarantees (shown by tests/test_pipeline.py, tests/test_faults.py and tests/test_soak.py):
- at-least-once: an accepted event is applied, or reported in `failed` (the engine refused it),
  or written to the spool at `stop`. Only a hard kill loses what is in memory; the spool file
  itself stays on disk until its events are applied, so a crash during replay replays again.
- in effect once: the engine's writes are guarded by Telegram time, so an event retried after
  failing halfway, or replayed twice from the spool, converges on the same roster.
- `stop` never hangs on a full queue or a dead store: after `timeout` it stops retrying and
  spools the rest.

What `serve` shows an operator (all cheap, callable from any thread):
- `backlog()`: events accepted and not yet applied (queue + spool replay + the one in flight).
- `stats()`: {"accepted", "applied", "failed", "retries", "replayed", "spooled", "backlog",
  "store_down"}; `retries` counts store failures met, `store_down` is true while the head
  event is waiting for the store, `spooled` is what the last `stop` wrote to the spool.
- `failed`: one line per event the engine refused (not a store outage); it is logged too.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional

from tgsync_cli.core.codec import from_dict, to_dict
from tgsync_cli.core.errors import InputError, StoreUnavailable, TgsyncError

log = logging.getLogger("tgsync.pipeline")
SPOOL_NAME = "pending-events.jsonl"  # in the session directory: private and per bot
_FLUSH = object()


class Pipeline:
    def __init__(self, engine, *, max_pending: int = 10000, flush_seconds: float = 900.0,
                 spool_path: Optional[str] = None, backoff: tuple = (0.2, 30.0),
                 sleep: Optional[Callable[[float], None]] = time.sleep,
                 rewarm_seconds: Optional[float] = None):
        self.engine = engine
        # Re-reading the member cache from the store (one query) every half TTL keeps active
        # members' entries from expiring, so a quiet member's next message stays on the hot path.
        self._rewarm_seconds = rewarm_seconds
        self._q: "queue.Queue[Any]" = queue.Queue(maxsize=max_pending)
        self._replay: Deque[Any] = collections.deque()  # spooled events: first, and unbounded
        self._flush_seconds = flush_seconds
        self._spool = Path(spool_path) if spool_path else None
        self._backoff = backoff
        # The default sleep is interruptible, so `stop` does not wait out a 30 s backoff.
        self._sleep = self._wait if sleep in (None, time.sleep) else sleep
        self._thread: Optional[threading.Thread] = None
        self._draining = threading.Event()   # stop asked: finish what is queued, then exit
        self._abandon = threading.Event()    # stop's timeout passed: stop retrying, spool the rest
        self._spool_lock = threading.Lock()
        self._head: Any = None               # the event being applied (or waiting for the store)
        self._closed = False
        self.accepted = 0
        self.applied = 0
        self.retries = 0
        self.replayed = 0
        self.spooled = 0
        self.store_down = False
        self.failed: List[str] = []

    # -- producer side ----------------------------------------------------------------------------
    def submit(self, event: Any, timeout: Optional[float] = None) -> None:
        """Accept an event; blocks (backpressure) while the queue is full (queue.Full on timeout).
        After `stop`, an event still arriving goes straight to the spool, so it is not lost."""
        if self._closed:
            self._append_spool([event])
            self.accepted += 1
            return
        self._q.put(event, timeout=timeout)
        self.accepted += 1

    def backlog(self) -> int:
        return self._q.qsize() + len(self._replay) + (1 if self._head is not None else 0)

    def stats(self) -> Dict[str, Any]:
        return {"accepted": self.accepted, "applied": self.applied, "failed": len(self.failed),
                "retries": self.retries, "replayed": self.replayed, "spooled": self.spooled,
                "backlog": self.backlog(), "store_down": self.store_down}

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> int:
        """Replay the spool from the last shutdown first, then run the worker. Returns replayed count."""
        self.replayed = self._load_spool()
        self._thread = threading.Thread(target=self._run, name="tgsync-worker", daemon=True)
        self._thread.start()
        return self.replayed

    def stop(self, timeout: float = 30.0) -> int:
        """Drain what is pending (bounded by `timeout`), flush last_seen; spool what is left.
        Returns how many events were spooled."""
        self._draining.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._abandon.set()
                self._thread.join(max(5.0, timeout))
        self._abandon.set()
        self._closed = True
        self.spooled = self._write_spool()
        try:
            self.engine.flush()
        except TgsyncError as exc:
            log.warning("last_seen not flushed at shutdown: %s", exc)
        return self.spooled

    def flush_soon(self) -> None:
        """Ask the worker to write buffered last_seen now (e.g. on SIGHUP)."""
        try:
            self._q.put_nowait(_FLUSH)
        except queue.Full:
            pass

    # -- worker -----------------------------------------------------------------------------------
    def _next(self) -> Any:
        if self._replay:
            return self._replay.popleft()
        try:
            return self._q.get(timeout=min(0.2, self._flush_seconds))
        except queue.Empty:
            return None

    def _run(self) -> None:
        next_flush = time.monotonic() + self._flush_seconds
        next_warm = time.monotonic() + (self._rewarm_seconds or float("inf"))
        while not self._abandon.is_set():
            item = self._next()
            if self._rewarm_seconds and time.monotonic() >= next_warm:
                if not self._with_retry(self.engine.start, "cache re-warm"):
                    return
                next_warm = time.monotonic() + self._rewarm_seconds
            if item is None and self._draining.is_set() and not self._replay and self._q.empty():
                return
            if item is _FLUSH or time.monotonic() >= next_flush:
                if not self._with_retry(self.engine.flush, "last_seen flush"):
                    return
                next_flush = time.monotonic() + self._flush_seconds
            if item is None or item is _FLUSH:
                continue
            self._head = item
            if not self._with_retry(lambda: self.engine.handle(item), type(item).__name__):
                return  # abandoned at shutdown: the head stays for the spool
            self._head = None
            self.applied += 1

    def _with_retry(self, fn: Callable[[], Any], what: str) -> bool:
        """True once `fn` went through (or was refused for good); False if abandoned at stop."""
        delay = self._backoff[0]
        while True:
            try:
                fn()
                self.store_down = False
                return True
            except StoreUnavailable as exc:
                self.retries += 1
                self.store_down = True
                if self._abandon.is_set():
                    return False
                log.warning("store unavailable (%s); retrying %s in %.1fs, backlog %d",
                            exc, what, delay, self.backlog(), extra={"backlog": self.backlog()})
                self._sleep(delay)
                if self._abandon.is_set():
                    return False
                delay = min(delay * 2, self._backoff[1])
            except Exception as exc:  # a refused or poisonous event must not stop the loop
                reason = str(exc) if isinstance(exc, TgsyncError) else f"{type(exc).__name__}: {exc}"
                self.failed.append(f"{what}: {reason}")
                log.error("event %s not applied: %s", what, reason)
                return True

    def _wait(self, seconds: float) -> None:
        self._abandon.wait(seconds)

    # -- spool ------------------------------------------------------------------------------------------
    def _write_spool(self) -> int:
        """Everything not applied, in order: the head, the rest of the replay, the queue."""
        items = []
        if self._head is not None:
            items.append(self._head)
            self._head = None
        items.extend(self._replay)
        self._replay.clear()
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not _FLUSH:
                items.append(item)
        if self._spool is None:
            if items:
                log.error("%d events pending at shutdown and no spool file configured", len(items))
            return len(items)
        with self._spool_lock:
            if not items:
                self._spool.unlink(missing_ok=True)  # everything replayed was applied
                return 0
            self._spool.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._spool.with_name(self._spool.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # names: owner-only
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for item in items:
                    fh.write(json.dumps(to_dict(item)) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._spool)
        log.warning("%d pending events spooled to %s", len(items), self._spool)
        return len(items)

    def _append_spool(self, items: List[Any]) -> None:
        if self._spool is None:
            log.error("event arrived after shutdown and no spool file configured: dropped")
            return
        with self._spool_lock:
            self._spool.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._spool, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                for item in items:
                    fh.write(json.dumps(to_dict(item)) + "\n")
        self.spooled += len(items)

    def _load_spool(self) -> int:
        """Queue the spool's events for replay. The file stays until `stop` rewrites it, so a crash
        mid-replay replays again (harmless: applying an event twice changes nothing). A line that
        is not an event is kept aside in `<spool>.bad` and reported with its line number."""
        if self._spool is None or not self._spool.exists():
            return 0
        bad = []
        with self._spool.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    self._replay.append(from_dict(json.loads(line)))
                except (ValueError, InputError, AttributeError, TypeError) as exc:
                    log.error("%s:%d: not a spooled event, kept in %s.bad (%s)", self._spool, n,
                              self._spool.name, str(exc)[:120])
                    bad.append(line if line.endswith("\n") else line + "\n")
        if bad:
            bad_path = self._spool.with_name(self._spool.name + ".bad")
            fd = os.open(bad_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.writelines(bad)
        return len(self._replay)


def scrub_spool(path: Path, telegram_id: int) -> int:
    """Drop the spooled events that name one person (`forget`): otherwise the next start would
    apply them and bring the person back. Returns how many were dropped."""
    path = Path(path)
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and _names(json.loads(line), telegram_id):
            dropped += 1
        elif line.strip():
            kept.append(line)
    if dropped:
        tmp = path.with_suffix(".scrub")
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return dropped


def _names(doc: Any, telegram_id: int) -> bool:
    """Whether a spooled event (as a dict) carries this person anywhere."""
    if isinstance(doc, dict):
        if doc.get("id") == telegram_id and "is_bot" in doc:  # a Person
            return True
        return any(_names(v, telegram_id) for v in doc.values())
    if isinstance(doc, list):
        return any(_names(v, telegram_id) for v in doc)
    return False
