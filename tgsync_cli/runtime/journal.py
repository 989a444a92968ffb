"""Durable before acknowledged: every accepted event is appended to the spool, group-committed.

Telegram resends nothing once the bot's update state moved past an update, and kurigram saves
that state when an update arrives, before any handler runs. So an event that lives only in the
work queue is lost by a kill -9. The journal closes that gap: `add` hands an event to a writer
thread, which appends whatever has gathered since its last write in one `write` + `fsync` (a
group commit, so a burst of updates costs one fsync, not one each), then advances `durable`.
The update-state gate (runtime/update_gate.py) lets kurigram save a state only once `durable`
covers every event accepted before it.

Bound: an event is on disk one fsync after the write in progress when it arrived, plus at most
`interval` (10 ms) of gathering; on an ordinary disk that is well under 50 ms, and `scripts/soak`
prints the worst wait it saw. When the disk refuses (full, read-only), the events stay in memory,
in order, and the writer retries with backoff; `durable` does not move, so the update state is
not saved past them and Telegram would resend them after a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

log = logging.getLogger("tgsync.journal")


class Journal:
    def __init__(self, append: Callable[[List[dict]], int], lock: Any, *, interval: float = 0.01,
                 max_pending: int = 100_000, backoff: Tuple[float, float] = (0.05, 1.0)):
        self._append = append  # the spool's append (fsyncs)
        self._lock = lock  # the spool's lock: a rewrite or a scrub never races a batch
        self._interval = interval
        self._max_pending = max_pending
        self._backoff = backoff
        self._cond = threading.Condition()
        self._buffer: List[Tuple[int, dict]] = []
        self.accepted = 0  # sequence number of the last event handed to `add`
        self.durable = 0   # every event up to this one is fsynced in the spool
        self.appended = 0  # lines written since `rewritten` was last called (compaction)
        self.failing: Optional[str] = None  # why the last write failed, while it keeps failing
        self.worst_wait = 0.0  # longest time from `add` to fsync seen (seconds)
        self._added_at: List[float] = []
        self._stop = False
        self._thread: Optional[threading.Thread] = None

    # -- producer ---------------------------------------------------------------------------------
    def add(self, doc: dict, timeout: Optional[float] = None) -> int:
        """Queue one event for the spool; returns its sequence number. Blocks while `max_pending`
        events wait for a disk that refuses them (TimeoutError after `timeout`)."""
        with self._cond:
            if len(self._buffer) >= self._max_pending:
                if not self._cond.wait_for(lambda: len(self._buffer) < self._max_pending or self._stop,
                                           timeout):
                    raise TimeoutError("journal full: the disk refuses the spool")
            self.accepted += 1
            self._buffer.append((self.accepted, doc))
            self._added_at.append(time.monotonic())
            self._cond.notify_all()
            return self.accepted

    def pending(self) -> int:
        with self._cond:
            return len(self._buffer)

    def wait_durable(self, seq: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.durable >= seq, timeout)

    def marks(self) -> Tuple[int, int]:
        """(accepted, durable): what the update-state gate compares."""
        with self._cond:
            return self.accepted, self.durable

    # -- writer -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tgsync-journal", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> List[dict]:
        """Write what is gathered (retrying for `timeout` if the disk refuses); returns the
        events still not on disk (kept in memory by the caller, reported)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + timeout
        delay = self._backoff[0]
        while self._write_batch() is False and time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, self._backoff[1])
        with self._cond:
            return [doc for _, doc in self._buffer]

    def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._buffer or self._stop, 0.5)
                if self._stop:
                    return
                if not self._buffer:
                    continue
            time.sleep(self._interval)  # gather the rest of a burst into this write
            if self._write_batch() is False:
                time.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
            else:
                delay = self._backoff[0]

    def _write_batch(self) -> Optional[bool]:
        """None: nothing to write; True: written and fsynced; False: the disk refused."""
        with self._lock:
            return self._write_locked()

    def _write_locked(self) -> Optional[bool]:
        with self._cond:
            batch = list(self._buffer)
        if not batch:
            return None
        try:
            self._append([doc for _, doc in batch])
        except OSError as exc:
            reason = f"{exc.strerror or type(exc).__name__}"
            if self.failing != reason:
                log.error("spool write failed (%s): %d accepted events wait in memory; the "
                          "update state is not saved past them", reason, len(batch))
            self.failing = reason
            return False
        now = time.monotonic()
        with self._cond:
            del self._buffer[:len(batch)]
            waited = now - self._added_at[0] if self._added_at else 0.0
            del self._added_at[:len(batch)]
            self.worst_wait = max(self.worst_wait, waited)
            self.durable = batch[-1][0]
            self.appended += len(batch)
            self._cond.notify_all()
        if self.failing is not None:
            log.warning("spool writable again: %d waiting events written", len(batch))
            self.failing = None
        return True

    def without(self, drop: Callable[[dict], Optional[dict]]) -> None:
        """Apply `drop` to the events not yet written (forget: None removes one). Call it
        holding the spool's lock, with the scrub of the file, so no batch slips between."""
        with self._cond:
            kept = [(s, d2) for s, d in self._buffer for d2 in [drop(d)] if d2 is not None]
            self._buffer[:] = kept
            self._added_at[:] = self._added_at[:len(kept)]

