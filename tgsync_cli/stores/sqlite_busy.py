"""Sharing one SQLite `file:` store between processes: taking the write lock, and checkpoints.

Taking the write lock. SQLite's own busy handler sleeps 1, 2, 5, 10 ... up to 100 ms between
attempts, while tgsync's write transactions hold the lock for well under a millisecond: two
writer processes spent seconds asleep and went slower together than one alone. So `begin` asks
for the lock without SQLite's handler and retries itself, sleeping 20 µs doubling to 0.5 ms (with
jitter, so two waiters do not wake in step), for as long as the busy timeout allowed before.
Once taken, nothing in the transaction waits on another writer.

Checkpoints. In WAL mode SQLite copies the log back into the database (a checkpoint, with an
fsync) from inside whichever commit crosses 1,000 pages: a last_seen flush or a member's write
would pay for it. The store's connection turns that off and a `Checkpointer` thread does it on its
own connection instead: a passive checkpoint (it never blocks a reader or a writer) whenever the
log has grown past a few megabytes, and one at close. Every process that opens the store runs
one, so the log is bounded whichever processes come and go.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from typing import Optional

BUSY_TIMEOUT_MS = 30_000
FIRST_SLEEP = 20e-6
MAX_SLEEP = 500e-6


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def begin(cur: sqlite3.Cursor, write: bool, timeout: float = BUSY_TIMEOUT_MS / 1000) -> int:
    """Start a transaction; a write one with the write lock taken. Returns the attempts it took.
    Raises sqlite3.OperationalError ("database is locked") once `timeout` seconds have passed."""
    if not write:
        cur.execute("BEGIN")
        return 1
    attempts, sleep, deadline = 0, FIRST_SLEEP, 0.0
    while True:
        attempts += 1
        if try_begin(cur):
            return attempts
        now = time.monotonic()
        if not deadline:
            deadline = now + timeout
        elif now > deadline:
            raise sqlite3.OperationalError("database is locked")
        time.sleep(sleep * (0.5 + random.random()))
        sleep = min(sleep * 2, MAX_SLEEP)


def try_begin(cur: sqlite3.Cursor) -> bool:
    """One attempt at a write transaction: False at once if another writer holds the lock."""
    cur.execute("PRAGMA busy_timeout = 0")
    try:
        cur.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as exc:
        if not _busy(exc):
            raise
        return False
    finally:
        # reads (and anything else on this connection) keep SQLite's own patience
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


class Checkpointer:
    """A daemon thread checkpointing one database file's WAL off the writers' path."""

    def __init__(self, db_path: str, wal_bytes: int = 4 << 20, poll_seconds: float = 0.25):
        self.db_path = db_path
        self.wal_path = db_path + "-wal"
        self.wal_bytes = wal_bytes
        self.poll_seconds = poll_seconds
        self.checkpoints = 0
        self._stop = threading.Event()
        self._conn: Optional[sqlite3.Connection] = None
        self._thread = threading.Thread(target=self._run, name="tgsync-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.db_path, timeout=0.1, isolation_level=None,
                                         check_same_thread=False)
        return self._conn

    def _wal_size(self) -> int:
        try:
            return os.stat(self.wal_path).st_size
        except OSError:
            return 0

    def checkpoint(self) -> None:
        """One passive checkpoint: copies what no reader still needs, waits for no one."""
        with contextlib.suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            if self._wal_size() >= self.wal_bytes:
                self.checkpoint()

    def stop(self) -> None:
        """Stop the thread and checkpoint what is left (within the 2 s a stop may take)."""
        self._stop.set()
        self._thread.join(1.0)
        if self._wal_size():
            self.checkpoint()
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


def start_checkpointer(conn: sqlite3.Connection) -> Optional[Checkpointer]:
    """Hand a file database's checkpoints from `conn` to a Checkpointer; None for memory."""
    row = conn.execute("PRAGMA database_list").fetchone()
    path = row[2] if row else ""
    if not path:
        return None
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        return None
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    return Checkpointer(path)
