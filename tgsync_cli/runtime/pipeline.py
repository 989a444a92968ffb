"""The in-process work queue between Telegram's update loop and the engine.

Adapters hand events to `submit` and return at once (the update loop never waits on the store).
One worker thread applies them in arrival order. If the store is down, the event at the head
waits and is retried with backoff — nothing accepted is dropped — and at shutdown whatever is
still pending is written to a spool file that the next start replays first.

Guarantees (shown by tests/runtime/test_pipeline.py, tests/sim/test_faults.py, tests/sim/test_soak.py):
- at-least-once: an accepted event is applied, or written to the spool (at `stop`, or at once
  when it keeps failing for another reason than a store outage: it is retried at the next
  start). `applied` counts only events that went through. A unique-key race between processes
  (two of them creating the same account) is retried like an outage, not a failure.
- last_seen (the hot path's only write, buffered in memory between store flushes) is appended to
  the spool every `checkpoint_seconds`, so kill -9 loses at most that much of it; a store
  outage at shutdown spools it with the events instead of dropping it.
- the spool is read line by line: a line that cannot be read goes to `<spool>.bad` with its
  line number and the rest replays (runtime/spool.py); the file stays until what it holds is
  applied, so a crash during replay replays again.
- in effect once: the engine's writes are guarded by Telegram time, so an event retried after
  failing halfway, or replayed twice from the spool, converges on the same roster.
- `stop` never hangs on a full queue or a dead store: after `timeout` it stops retrying and
  spools the rest.
- `forget` in another process is heard through the store (`forgotten_since`, polled every
  `forget_poll_seconds`): what this process holds for that person is dropped, and what it
  applied for them in between is erased again.

What `serve` shows an operator (all cheap, callable from any thread):
- `backlog()`: events accepted and not yet applied (queue + spool replay + the one in flight).
- `stats()`: {"accepted", "applied", "failed", "retries", "replayed", "spooled", "backlog",
  "store_down", "parked"}; `retries` counts store failures and races met, `store_down` is true
  while the head event is waiting for the store, `spooled` is what went to the spool,
  `parked` the events that kept failing and were spooled for the next start.
- `failed`: one line per event that kept failing (not a store outage); it is logged too.
"""

from __future__ import annotations

import collections
import functools
import logging
import queue
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from tgsync_cli.core.codec import from_dict, to_dict
from tgsync_cli.core.errors import StoreConflict, StoreUnavailable, TgsyncError
from tgsync_cli.core.seen import SeenTimes
from tgsync_cli.runtime.forget_watch import ForgetWatch, people_of  # noqa: F401 (re-exported)
from tgsync_cli.runtime.club_wait import CLUB_WAIT_SECONDS, RECHECK_SECONDS, club_now, waits_for_club
from tgsync_cli.runtime.journal import Journal
from tgsync_cli.runtime.spool import SeenNote, Spool, erase_person, merge_note, scrub, seen_buffer_docs, seen_times

log = logging.getLogger("tgsync.pipeline")
SPOOL_NAME = "pending-events.jsonl"  # in the session directory: private and per bot
_FLUSH = object()
ATTEMPTS = 3  # an event failing for another reason than the store is tried this often, then spooled
COMPACT_LINES = 20_000  # journal lines between compactions (at least twice the last rewrite)
RACE_ATTEMPTS = 20  # a unique-key race resolves on the next try; this only bounds a broken store


def is_race(exc: BaseException) -> bool:
    """A unique-key race with another process, as every backend reports it (`StoreConflict`):
    the other writer won, and doing it again finds its row."""
    return isinstance(exc, StoreConflict)


class Observer:
    """What the worker tells about its work (runtime/metrics.py counts it); silent by default.
    Called on the worker thread only, so an observer needs no lock of its own."""

    def applying(self, item: Any) -> None: ...
    def applied(self, item: Any) -> None: ...
    def failed(self, item: Any, reason: str) -> None: ...
    def skipped(self, item: Any) -> None: ...
    def flushed(self, seconds: float) -> None: ...


class Pipeline:
    def __init__(self, engine, *, max_pending: int = 10000, flush_seconds: float = 900.0,
                 spool_path: Optional[str] = None, backoff: tuple = (0.2, 30.0),
                 sleep: Optional[Callable[[float], None]] = time.sleep,
                 rewarm_seconds: Optional[float] = None, checkpoint_seconds: float = 5.0,
                 forget_poll_seconds: float = 5.0, journal: bool = True):
        self.engine = engine
        # Re-reading the member cache from the store (one query) every half TTL keeps active
        # members' entries from expiring, so a quiet member's next message stays on the hot path.
        self._rewarm_seconds = rewarm_seconds
        self._q: "queue.Queue[Any]" = queue.Queue(maxsize=max_pending)
        self._replay: Deque[Any] = collections.deque()  # spooled events: first, and unbounded
        self._parked: List[Any] = []  # events that kept failing: spooled, retried next start
        self._flush_seconds = flush_seconds
        self._checkpoint_seconds = checkpoint_seconds
        self._checkpointed: Dict[Tuple[str, int], SeenTimes] = {}  # buffered times already spooled
        self._forget_poll_seconds = forget_poll_seconds
        self.forget = ForgetWatch(engine, self)
        self._spool = Spool(spool_path) if spool_path else None
        self._spool_lock = threading.RLock()
        # every accepted event goes to the spool within milliseconds (group commit), before
        # kurigram may save the update state past it (runtime/update_gate.py)
        self._journal = (Journal(self._spool.append, self._spool_lock,
                                 max_pending=max_pending) if self._spool and journal else None)
        self._head_seq = 0                   # the journal sequence of the head (0: from the spool)
        self.unsaved = 0                     # at stop: events that reached no disk (exit 1)
        self._pending_stop: List[Any] = []   # gathered at stop, kept until the spool has them
        self._pending_seen: List[dict] = []
        self._compact_after = COMPACT_LINES
        self._waiting: Deque[Tuple[float, Any]] = collections.deque()  # (give up at, event)
        self._next_wait_check = 0.0
        self.gave_up = 0  # events dropped after waiting in vain for their club
        self._backoff = backoff
        # The default sleep is interruptible, so `stop` does not wait out a 30 s backoff.
        self._sleep = self._wait if sleep in (None, time.sleep) else sleep
        self._thread: Optional[threading.Thread] = None
        self._draining = threading.Event()   # stop asked: finish what is queued, then exit
        self._abandon = threading.Event()    # stop's timeout passed: stop retrying, spool the rest
        self._head: Any = None               # the event being applied (or waiting for the store)
        self._closed = False
        self.accepted = 0
        self.applied = 0
        self.retries = 0
        self.replayed = 0
        self.spooled = 0
        self.bad_lines = 0
        self.done = 0     # events taken off the queue in order: applied, spooled as failing, or dropped
        self.durable = 0  # of those, how many have every effect on disk (store or spool), last_seen
        #                   included: an "acknowledge up to here" mark for at-least-once sources
        self.store_down = False
        self.failed: List[str] = []
        self.observer = Observer()

    # -- what the forget watch reads and drops ---------------------------------------------------
    def held(self) -> List[Any]:
        """Events held besides the queue: replayed from the spool, parked after failing, or
        waiting for their club."""
        return list(self._replay) + self._parked + [e for _, e in self._waiting]

    def discard(self, keep: Callable[[Any], Any]) -> None:
        """`keep(event)` is the event as it may still be applied, or None to drop it."""
        self._replay = collections.deque(e for e in map(keep, self._replay) if e is not None)
        self._parked = [e for e in map(keep, self._parked) if e is not None]
        self._waiting = collections.deque((t, k) for t, e in self._waiting for k in [keep(e)]
                                          if k is not None)

    def scrub_spool(self, telegram_id: int) -> None:
        if self._spool is not None:
            with self._spool_lock:  # the journal writes under this lock: nothing slips between
                if self._journal is not None:
                    self._journal.without(lambda doc: erase_person(doc, telegram_id))
                scrub(self._spool.path, telegram_id)

    def count_retry(self) -> None:
        self.retries += 1

    # -- producer side ----------------------------------------------------------------------------
    def submit(self, event: Any, timeout: Optional[float] = None) -> None:
        """Accept an event; blocks (backpressure) while the queue is full (queue.Full on timeout).
        The event is journaled to the spool too (fsynced within milliseconds, see `durable_marks`).
        After `stop`, an event still arriving goes straight to the spool, so it is not lost."""
        if self._closed:
            self._append_spool([event])
            self.accepted += 1
            return
        try:
            doc = to_dict(event) if self._journal is not None else None
        except Exception:  # not an event: nothing could replay it; the worker reports it
            doc = None
        if doc is None:
            self._q.put((0, event), timeout=timeout)
            self.accepted += 1
            return
        if self._q.full():  # backpressure before journaling: a refused event is not accepted
            self._wait_for_room(timeout)
        journal = self._journal
        assert journal is not None  # a doc is made only when there is a journal
        try:
            seq = journal.add(doc, timeout=timeout)
        except TimeoutError:
            raise queue.Full from None
        self._q.put((seq, event))
        self.accepted += 1

    def _wait_for_room(self, timeout: Optional[float]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._q.full():
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Full
            time.sleep(0.005)

    def durable_marks(self) -> tuple:
        """(accepted, durable) journal sequence numbers: every event up to `durable` is fsynced
        in the spool. Without a spool nothing is durable here and both are the accepted count."""
        if self._journal is None or self._closed:
            return self.accepted, self.accepted
        return self._journal.marks()

    def backlog(self) -> int:
        return self._q.qsize() + len(self._replay) + (1 if self._head is not None else 0)

    def worker_alive(self) -> bool:
        """False once the worker thread has ended (stopped, or died of a bug)."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> Dict[str, Any]:
        return {"accepted": self.accepted, "applied": self.applied, "failed": len(self.failed),
                "retries": self.retries, "replayed": self.replayed, "spooled": self.spooled,
                "backlog": self.backlog(), "store_down": self.store_down,
                "waiting_for_club": len(self._waiting), "gave_up": self.gave_up,
                "parked": len(self._parked)}

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> int:
        """Replay the spool from the last shutdown first, then run the worker. Returns replayed count."""
        self.replayed = self._load_spool()
        self.forget.poll()  # erasures noted while we were down filter the replay too
        if self._journal is not None:
            self._journal.start()
        self._thread = threading.Thread(target=self._run, name="tgsync-worker", daemon=True)
        self._thread.start()
        return self.replayed

    def stop(self, timeout: float = 30.0) -> int:
        """Drain what is pending (bounded by `timeout`), flush last_seen; spool what is left
        (last_seen included when the store cannot take it). Returns how many lines were spooled."""
        self._draining.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._abandon.set()
                self._thread.join(max(5.0, timeout))
        self._abandon.set()
        self._closed = True
        self.forget.poll()  # a forget that ran while we drained must not be undone by the spool
        self.forget.flushing()
        for attempt in range(3):  # a reply lost once is not an outage: asked twice more
            try:
                self.engine.flush()
                break
            except TgsyncError as exc:  # the engine kept them: they go to the spool below
                if attempt == 2:
                    log.warning("last_seen not flushed at shutdown (%s): spooled for the next start", exc)
        self.forget.poll()  # one that landed during that flush: erased again
        unwritten = self._journal.stop(0.0) if self._journal is not None else []
        self.spooled = self._spool_at_stop(unwritten, timeout)
        return self.spooled

    def _spool_at_stop(self, unwritten: List[dict], timeout: float) -> int:
        """The final rewrite of the spool. When the disk refuses it (full), what is pending stays
        in memory and the write is tried again until `timeout`; then one line says how many
        events reached no disk (`unsaved`, and serve exits 1). The journal already holds every
        event it wrote, so only `unwritten` (and last_seen not yet checkpointed) can be lost."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                return self._write_spool()
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                if time.monotonic() >= deadline:
                    break
                log.warning("spool not written at shutdown (%s); trying again", reason)
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 1.0)
        seen = len(self._pending_seen) if self._pending_seen else 0
        self.unsaved = len(unwritten) + seen
        assert self._spool is not None
        if self.unsaved:
            log.error("%d accepted events and %d last_seen could not be written to %s (%s): "
                      "they are lost when this process exits", len(unwritten), seen,
                      self._spool.path, reason)
        else:
            log.warning("spool not compacted at shutdown (%s): the next start replays events "
                        "already applied, which changes nothing", reason)
        return 0

    def flush_soon(self) -> None:
        """Ask the worker to write buffered last_seen now (e.g. on SIGHUP)."""
        try:
            self._q.put_nowait((0, _FLUSH))
        except queue.Full:
            pass

    # -- worker -----------------------------------------------------------------------------------
    def _next(self) -> Any:
        if self._replay:
            self._head_seq = 0
            return self._replay.popleft()
        try:
            self._head_seq, item = self._q.get(timeout=min(0.2, self._flush_seconds))
            return item
        except queue.Empty:
            return None

    def _run(self) -> None:
        now = time.monotonic()
        next_flush = now + self._flush_seconds
        next_warm = now + (self._rewarm_seconds or float("inf"))
        next_checkpoint = now + self._checkpoint_seconds
        next_forget = now + self._forget_poll_seconds
        while not self._abandon.is_set():
            item = self._next()
            if item is not None and item is not _FLUSH:
                self._head = item  # taken: a compaction before it is applied must keep it
            now = time.monotonic()
            if self._rewarm_seconds and now >= next_warm:
                if not self._with_retry(self.engine.start, "cache re-warm"):
                    return
                next_warm = time.monotonic() + self._rewarm_seconds
            if now >= next_forget:
                self.forget.poll()
                next_forget = time.monotonic() + self._forget_poll_seconds
            if item is None and self._draining.is_set() and not self._replay and self._q.empty():
                return
            if item is _FLUSH or now >= next_flush:
                began = time.monotonic()
                self.forget.flushing()
                if not self._with_retry(self.engine.flush, "last_seen flush"):
                    return
                self.observer.flushed(time.monotonic() - began)
                self._compact_spool()
                self.durable = self.done
                next_flush = time.monotonic() + self._flush_seconds
            elif now >= next_checkpoint:
                self._checkpoint()
                next_checkpoint = time.monotonic() + self._checkpoint_seconds
            if self._waiting and now >= self._next_wait_check:
                self._recheck_waiting(now)
            if self._journal is not None and self._journal.appended > self._compact_after:
                self._compact_spool()  # the journal's applied lines go; what is pending stays
            if item is None or item is _FLUSH:
                continue
            kept = self.forget.without_forgotten(item)
            if kept is None:
                self._head = None
                self.done += 1
                self.observer.skipped(item)
                continue
            item = kept
            self._head = item
            self.observer.applying(item)
            outcome = self._with_retry(functools.partial(self.engine.handle, item), type(item).__name__)
            if outcome is False:
                return  # abandoned at shutdown: the head stays for the spool
            self._head = None
            self.done += 1
            if outcome is True:
                self.applied += 1
                self.forget.note_applied(item)
                self.observer.applied(item)
                if waits_for_club(self.engine, item):  # another process may be creating it
                    self._waiting.append((time.monotonic() + CLUB_WAIT_SECONDS, item))
            else:
                self._park(item, outcome)
                self.observer.failed(item, outcome)

    def _recheck_waiting(self, now: float) -> None:
        """Events that found no club: those whose club exists now go to the head of the line;
        those that waited `CLUB_WAIT_SECONDS` in vain are dropped, as before any wait."""
        self._next_wait_check = now + RECHECK_SECONDS
        still: Deque[Tuple[float, Any]] = collections.deque()
        ready = []
        for until, event in self._waiting:
            try:
                found = club_now(self.engine, event)
            except TgsyncError:  # the store is down: asked again at the next check
                found = False
            if found:
                ready.append(event)
            elif now >= until:
                self.gave_up += 1
            else:
                still.append((until, event))
        self._waiting = still
        self._replay.extendleft(reversed(ready))

    def _with_retry(self, fn: Callable[[], Any], what: str):
        """True once `fn` went through; False if abandoned at stop; else the reason it kept
        failing (for anything but a store outage, which is waited out however long it lasts)."""
        delay = self._backoff[0]
        attempts = races = 0
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
            except Exception as exc:
                if is_race(exc) and races < RACE_ATTEMPTS:
                    races += 1
                    self.retries += 1
                    log.info("%s met a concurrent write (%s); trying again", what, type(exc).__name__)
                    continue
                attempts += 1
                reason = str(exc) if isinstance(exc, TgsyncError) else f"{type(exc).__name__}: {exc}"
                if attempts < ATTEMPTS and not self._abandon.is_set():
                    log.warning("%s failed (%s); trying again", what, reason[:200])
                    continue
                return reason[:300]

    def _park(self, item: Any, reason: str) -> None:
        """An event that kept failing: reported, and kept in the spool for the next start."""
        self.failed.append(f"{type(item).__name__}: {reason}")
        log.error("event %s not applied: %s; kept in the spool for the next start",
                  type(item).__name__, reason)
        try:
            to_dict(item)
        except Exception:  # not an event at all: nothing could ever apply it
            log.error("%r is not an event and cannot be spooled", type(item).__name__)
            return
        self._parked.append(item)  # the journal (or the spool it was replayed from) holds it

    def _wait(self, seconds: float) -> None:
        self._abandon.wait(seconds)

    # -- spool ------------------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """Append the last_seen that changed since the last checkpoint (kill -9 loses at most
        `checkpoint_seconds` of them)."""
        if self._spool is None:
            return
        done = self.done
        changed = {k: v for k, v in seen_times(self.engine.seen).items() if self._checkpointed.get(k) != v}
        if changed:
            try:
                with self._spool_lock:
                    self._spool.append(seen_buffer_docs(self.engine.seen, changed))
            except OSError as exc:
                log.error("last_seen checkpoint not written to %s: %s", self._spool.path, exc)
                return
            self._checkpointed.update(changed)
        self.durable = done

    def _compact_spool(self) -> None:
        """After a store flush, the spool needs only what is still unapplied."""
        if self._spool is None:
            return
        with self._spool_lock:
            if not self._spool.exists():
                self._checkpointed = {}
                return
            durable = self._journal.durable if self._journal is not None else 0
            with self._q.mutex:  # events the journal wrote and the worker has not applied yet
                queued = [e for seq, e in self._q.queue if 0 < seq <= durable and e is not _FLUSH]
            head = ([self._head] if self._head is not None
                    and (self._head_seq == 0 or self._head_seq <= durable) else [])
            waiting = [e for _, e in self._waiting]
            docs = [to_dict(e) for e in head + list(self._replay) + self._parked + waiting + queued]
            docs += seen_buffer_docs(self.engine.seen)
            try:
                written = self._spool.rewrite(docs)
            except OSError as exc:  # a full disk: the spool stays as it was (a superset)
                log.warning("spool not compacted (%s): it keeps applied events a while longer",
                            exc.strerror or type(exc).__name__)
                return
            if self._journal is not None:
                self._journal.appended = 0
                self._compact_after = max(COMPACT_LINES, 2 * written)
            self._checkpointed = seen_times(self.engine.seen)

    def _write_spool(self) -> int:
        """Everything not applied, in order: the head, the rest of the replay, the queue, the
        parked events, then the last_seen the store did not take. What it gathers stays in
        `_pending_stop` until the write went through (a full disk: tried again)."""
        items = self._pending_stop
        if self._head is not None:
            items.append(self._head)
            self._head = None
        items.extend(self._replay)
        self._replay.clear()
        while True:
            try:
                _, item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not _FLUSH:
                items.append(item)
        items.extend(e for _, e in self._waiting)
        self._waiting.clear()
        items[:] = [kept for kept in map(self.forget.without_forgotten, items) if kept is not None]
        items = items + self._parked
        docs = []
        for item in items:
            try:
                docs.append(to_dict(item))
            except Exception:
                log.error("%r is not an event and cannot be spooled", type(item).__name__)
        seen = self._pending_seen = seen_buffer_docs(self.engine.seen)
        if self._spool is None:
            if docs or seen:
                log.error("%d events and %d last_seen pending at shutdown and no spool file "
                          "configured", len(docs), len(seen))
            return len(docs) + len(seen)
        with self._spool_lock:
            n = self._spool.rewrite(docs + seen)
        self._pending_stop, self._pending_seen = [], []
        if n:
            log.warning("%d pending events and %d last_seen spooled to %s", len(docs), len(seen),
                        self._spool.path)
        return n

    def _append_spool(self, items: List[Any]) -> None:
        if self._spool is None:
            log.error("event arrived after shutdown and no spool file configured: dropped")
            return
        with self._spool_lock:
            self.spooled += self._spool.append([to_dict(i) for i in items])

    def _load_spool(self) -> int:
        """Queue the spool's events for replay and merge its last_seen. The file stays until
        what it holds is applied. A line that cannot be read goes to `<spool>.bad`."""
        if self._spool is None:
            return 0
        with self._spool_lock:
            items, self.bad_lines = self._spool.load(from_dict)
        for item in items:
            if isinstance(item, SeenNote):
                merge_note(self.engine.seen, item)
            else:
                self._replay.append(item)
        self._checkpointed = seen_times(self.engine.seen)
        return len(self._replay)

