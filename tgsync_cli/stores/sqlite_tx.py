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

A batch does not take the write lock when it opens. Member observations are read and decided
without it and kept as a plan (`sqlite_plan`), made under the lock at the end if the rows they
rest on did not move meanwhile; the first call of any other kind takes the lock there and then
(the plan's writes first), and the rest of the batch runs inside that one transaction as before.
So a second writer process finds the lock free for most of the time this one spends deciding.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import Callable, Iterator, NoReturn, Optional, Tuple

from tgsync_cli.core.errors import StoreConflict, StoreError, StoreUnavailable
from tgsync_cli.stores.common import doing
from tgsync_cli.stores.sqlite_busy import begin, try_begin
from tgsync_cli.stores.sqlite_plan import Plan


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
        self._plan = Plan()  # the open batch's observations, decided before the lock
        self._locked = False  # the open batch holds the write lock (its transaction has begun)
        self._cur: Optional[sqlite3.Cursor] = None  # the open batch's cursor
        self._reading = False  # the open batch's read transaction (its plan's snapshot) is open

    @contextlib.contextmanager
    def tx(self, name: str, write: bool = True) -> Iterator[sqlite3.Cursor]:
        """One protocol call: its own transaction, or a savepoint inside this thread's batch."""
        with self._lock:
            self._on_call()
            if self._batch == threading.get_ident():
                if not self._locked:
                    self._lock_batch()
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
    def planned(self, name: str) -> Iterator[Optional[Tuple[sqlite3.Cursor, Plan]]]:
        """Inside this thread's batch before it took the lock: a cursor in the batch's read
        transaction and the batch's plan to add the call's writes to. Else None: the call runs as
        `tx` runs it. One read transaction for the whole plan, not one a statement: each new one
        after another process committed would throw away this connection's page cache."""
        with self._lock:
            if self._batch != threading.get_ident() or self._locked:
                yield None
                return
            self._on_call()
            cur = self._conn.cursor()
            try:
                if not self._reading:
                    cur.execute("BEGIN")
                    self._reading = True
                yield cur, self._plan
            except BaseException as exc:
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
            self._cur = self._conn.cursor()
            self._batch = threading.get_ident()
            try:
                try:
                    yield
                except BaseException:
                    self._finish(quiet=True)  # the block's own error is the one to report
                    raise
                self._finish()
            finally:
                self._batch = None
                self._locked = False
                if self._reading:  # only when ending it failed
                    self._reading = False
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                self._cur.close()
                self._cur = None

    def try_lock(self) -> bool:
        """In this thread's batch: take the write lock now if no other writer holds it, and
        make the plan's writes (True: the batch may end without waiting). False: the lock is
        busy and the caller may go on deciding, keeping the plan."""
        with self._lock:
            if self._batch != threading.get_ident() or self._locked or not self._plan:
                return True
            assert self._cur is not None
            try:
                self._end_read()  # the next read, if the lock is busy, takes a new snapshot
                if not try_begin(self._cur):
                    return False
            except sqlite3.OperationalError as exc:
                _typed(self._label, "batch", exc)
            self._lock_batch(begun=True)
            return True

    def _lock_batch(self, begun: bool = False) -> None:
        """Take the write lock for the open batch and make its plan's writes."""
        assert self._cur is not None
        try:
            if not begun:
                self._end_read()
                begin(self._cur, True)
        except sqlite3.OperationalError as exc:
            self._plan.discard()  # nothing of it can be written
            _typed(self._label, "batch", exc)
        self._locked = True
        try:
            self._plan.apply(self._cur)
        except BaseException as exc:
            self._plan.discard()
            self._locked = False
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self._on_rollback()
            _typed(self._label, "batch", exc)

    def _end_read(self) -> None:
        if self._reading:
            self._reading = False
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")  # a read transaction: nothing to write

    def _finish(self, quiet: bool = False) -> None:
        assert self._cur is not None
        try:
            self._end_read()
            if not self._locked and self._plan:
                self._lock_batch()
        except BaseException:
            if not quiet:
                raise
            return
        if self._locked:
            self._end(self._cur, quiet)

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
