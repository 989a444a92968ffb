"""The SQLite store's transactions: one a protocol call, or several calls sharing one (a batch).

Why batches: with two writer processes on one `file:` store, each commit writes its pages to the
WAL while holding the write lock, and that commit was most of what a member write cost (about
0.5 ms of a 1 ms event). A bulk writer such as `replay` can instead open one write transaction
for a run of events (`batch()`), so the pages the events share (the club row, index leaves) are
written once and the lock is taken once. Inside a batch each call still runs whole or not at all:
it is a SAVEPOINT, rolled back alone if it fails, so an event's rules see exactly what they would
have seen in a transaction of its own. What a batch gives up is only the moment of durability: a
process killed mid-batch loses that batch's events, which is why only a caller that can apply
them again (replay reruns its file; every observation is idempotent) uses it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import Callable, Iterator, NoReturn, Optional

from tgsync_cli.core.errors import StoreConflict, StoreError, StoreUnavailable
from tgsync_cli.stores.common import doing
from tgsync_cli.stores.sqlite_busy import begin


def _typed(label: str, name: str, exc: BaseException) -> NoReturn:
    """The store's own error for a SQLite one (what the caller can do about it), else `exc`."""
    if isinstance(exc, sqlite3.IntegrityError):
        raise StoreConflict(f"{label}: {doing(name)} lost a race ({exc})") from exc
    if isinstance(exc, sqlite3.OperationalError):
        raise StoreUnavailable(f"{label}: {doing(name)} failed ({exc})") from exc
    if isinstance(exc, sqlite3.DatabaseError):
        raise StoreError(f"{label}: {doing(name)} failed ({exc})") from exc
    raise exc


class Transactions:
    """Transactions on one connection, serialised by the store's lock."""

    def __init__(self, conn: sqlite3.Connection, label: str, lock: threading.RLock,
                 on_call: Callable[[], None], on_rollback: Callable[[], None]) -> None:
        self._conn = conn
        self._label = label
        self._lock = lock
        self._on_call = on_call
        self._on_rollback = on_rollback
        self._batch: Optional[int] = None  # the thread whose batch is open

    @contextlib.contextmanager
    def tx(self, name: str, write: bool = True) -> Iterator[sqlite3.Cursor]:
        """One protocol call: its own transaction, or a savepoint inside this thread's batch."""
        with self._lock:
            self._on_call()
            if self._batch == threading.get_ident():
                with self._in_batch(name, write) as cur:
                    yield cur
                return
            cur = self._conn.cursor()
            try:
                begin(cur, write)  # the write lock with sub-millisecond retries
                yield cur
                cur.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                _typed(self._label, name, exc)
            finally:
                cur.close()

    @contextlib.contextmanager
    def _in_batch(self, name: str, write: bool) -> Iterator[sqlite3.Cursor]:
        cur = self._conn.cursor()
        try:
            if write:  # reads change nothing: no savepoint to undo
                cur.execute("SAVEPOINT call")
            yield cur
            if write:
                cur.execute("RELEASE call")
        except BaseException as exc:
            if write:
                with contextlib.suppress(sqlite3.Error):
                    cur.execute("ROLLBACK TO call")
                    cur.execute("RELEASE call")
            _typed(self._label, name, exc)
        finally:
            cur.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Calls made by this thread inside the block share one write transaction, committed at
        the end, also when the block raises: every call that returned was whole, as it would have
        been committed on its own. A nested batch joins the open one."""
        with self._lock:
            if self._batch == threading.get_ident():
                yield
                return
            cur = self._conn.cursor()
            try:
                try:
                    begin(cur, True)
                except sqlite3.OperationalError as exc:
                    _typed(self._label, "batch", exc)
                self._batch = threading.get_ident()
                try:
                    yield
                except BaseException:
                    self._batch = None
                    self._end(cur, quiet=True)  # the block's own error is the one to report
                    raise
                self._batch = None
                self._end(cur)
            finally:
                cur.close()

    def _end(self, cur: sqlite3.Cursor, quiet: bool = False) -> None:
        try:
            if self._conn.in_transaction:
                cur.execute("COMMIT")
            else:  # SQLite ended it itself (disk full, I/O error): the calls' writes are gone
                self._on_rollback()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self._on_rollback()
            if not quiet:
                _typed(self._label, "batch commit", exc)
