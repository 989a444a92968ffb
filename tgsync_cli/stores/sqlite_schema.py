"""The embedded store's tables, value encoding, and how a `file:`/`memory:` URI becomes a connection.

Times are stored as fixed-width text (`YYYY-MM-DD HH:MM:SS.ffffff`, naive UTC), so SQL compares
them correctly; `sync` is JSON with times tagged. Files are the owner's only (0700 dir, 0600 db).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, Optional, Tuple, overload

from tgsync_cli.core.errors import ConfigError, StoreError
from tgsync_cli.stores.private import make_private_dirs

SCHEMA_VERSION = 3
APPLICATION_ID = 0x54475359  # "TGSY" in the file's header: this SQLite file is a tgsync store
# what a store of an older schema gains on its first writable open
MIGRATIONS = {2: ("ALTER TABLE memberships ADD COLUMN prior_at TEXT",
                  "ALTER TABLE memberships ADD COLUMN confirmed_at TEXT"),
              3: ("ALTER TABLE memberships ADD COLUMN seen_times TEXT",)}
# An account's times span the evidence of its person: created_at the earliest, updated_at the
# newest, of each club's joined_at (and of what met the account outside a club). However a joined_at
# moves back (an older event delivered late, the flush of an earlier buffered message), the account
# follows: created_at back to it, and updated_at, when it was this club's old joined_at, to the
# newest joined_at left. (The flush names joined_at in every row's SET: the WHEN keeps rows whose
# joined_at did not move back from costing a probe.)
TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS account_dated_back_insert AFTER INSERT ON memberships"
    " WHEN new.joined_at IS NOT NULL BEGIN UPDATE users SET created_at = new.joined_at"
    " WHERE telegram_id = new.telegram_id AND created_at > new.joined_at; END",
    "CREATE TRIGGER IF NOT EXISTS account_dated_back_update AFTER UPDATE OF joined_at ON memberships"
    " WHEN new.joined_at < old.joined_at BEGIN UPDATE users SET"
    " updated_at = CASE WHEN updated_at = old.joined_at THEN max(min(coalesce(created_at, new.joined_at),"
    " new.joined_at), (SELECT max(joined_at) FROM memberships WHERE telegram_id = new.telegram_id))"
    " ELSE updated_at END,"
    " created_at = CASE WHEN created_at > new.joined_at THEN new.joined_at ELSE created_at END"
    " WHERE telegram_id = new.telegram_id; END")
DB_FILE = "{database}.sqlite3"
MEMBER_COLS = ("user_id", "telegram_id", "username", "first_name", "role", "status", "joined_at",
               "last_seen", "source", "status_at", "role_at", "invited_by", "invite_link", "hard_at", "proof_at",
               "prior_at", "confirmed_at", "seen_times")
MEMBER_TIMES = ("joined_at", "last_seen", "status_at", "role_at", "hard_at", "proof_at", "prior_at")
MEMBER_TIME_LISTS = ("confirmed_at", "seen_times")  # JSON lists of times
USER_COLS = ("id", "telegram_id", "username", "first_name", "last_name", "language_code",
             "created_at", "updated_at", "dm_blocked")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS clubs (
    id TEXT PRIMARY KEY, telegram_group_id INTEGER NOT NULL UNIQUE, name TEXT, username TEXT,
    created_by TEXT, sync TEXT NOT NULL DEFAULT '{}', previous_group_ids TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS clubs_username ON clubs (username COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS clubs_created_by ON clubs (created_by);
CREATE TABLE IF NOT EXISTS club_aliases (old_group_id INTEGER PRIMARY KEY, club_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, telegram_id INTEGER NOT NULL UNIQUE, username TEXT, first_name TEXT,
    last_name TEXT, language_code TEXT, created_at TEXT, updated_at TEXT, dm_blocked INTEGER);
CREATE TABLE IF NOT EXISTS memberships (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, club_id TEXT NOT NULL, telegram_id INTEGER NOT NULL,
    user_id TEXT, username TEXT, first_name TEXT, role TEXT, status TEXT, joined_at TEXT,
    last_seen TEXT, source TEXT, status_at TEXT, role_at TEXT, invited_by INTEGER, invite_link TEXT,
    hard_at TEXT, proof_at TEXT, prior_at TEXT, confirmed_at TEXT, seen_times TEXT,
    UNIQUE (club_id, telegram_id));
CREATE INDEX IF NOT EXISTS memberships_telegram_id ON memberships (telegram_id);
CREATE INDEX IF NOT EXISTS memberships_active ON memberships (status, club_id, telegram_id);
CREATE TABLE IF NOT EXISTS departures (
    club_id TEXT NOT NULL, telegram_id INTEGER NOT NULL, status TEXT, at TEXT,
    PRIMARY KEY (club_id, telegram_id));
CREATE INDEX IF NOT EXISTS departures_at ON departures (at);
CREATE INDEX IF NOT EXISTS departures_telegram_id ON departures (telegram_id);
CREATE TABLE IF NOT EXISTS membership_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, club_id TEXT NOT NULL, telegram_id INTEGER NOT NULL,
    at TEXT, from_status TEXT, from_role TEXT, to_status TEXT, to_role TEXT, source TEXT,
    actor INTEGER, invite_link TEXT, invited_by INTEGER);
CREATE INDEX IF NOT EXISTS log_club ON membership_log (club_id, at);
CREATE INDEX IF NOT EXISTS log_telegram_id ON membership_log (telegram_id);
CREATE TABLE IF NOT EXISTS activity (
    club_id TEXT NOT NULL, week TEXT NOT NULL, telegram_id INTEGER NOT NULL,
    PRIMARY KEY (club_id, week, telegram_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS activity_telegram_id ON activity (telegram_id);
CREATE TABLE IF NOT EXISTS reconciles (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, club_id TEXT NOT NULL, at TEXT, telegram INTEGER,
    active INTEGER, drift INTEGER);
CREATE INDEX IF NOT EXISTS reconciles_club ON reconciles (club_id, at);
CREATE TABLE IF NOT EXISTS forgotten (salt TEXT NOT NULL, key TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS forgotten_at ON forgotten (at);
"""

REQUESTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, club_id TEXT,
    telegram_id INTEGER, action TEXT, state TEXT NOT NULL, at TEXT, claim TEXT, claimed_at TEXT,
    doc TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS requests_state ON requests (state, at);
CREATE INDEX IF NOT EXISTS requests_member ON requests (club_id, telegram_id)
"""


def dt_in(v: Optional[datetime]) -> Optional[str]:
    if v is None:
        return None
    if v.tzinfo is not None:
        v = v.astimezone(timezone.utc).replace(tzinfo=None)
    return v.isoformat(sep=" ", timespec="microseconds")  # fixed width: compares as text


@overload
def dt_out(v: str) -> datetime: ...
@overload
def dt_out(v: None) -> None: ...
def dt_out(v: Optional[str]) -> Optional[datetime]:
    if v is None:
        return None
    return datetime.fromisoformat(v)


def sync_in(sync: Dict[str, Any]) -> str:
    return json.dumps({k: ({"$dt": dt_in(v)} if isinstance(v, datetime) else v) for k, v in sync.items()})


def sync_out(text: Optional[str]) -> Dict[str, Any]:
    raw = json.loads(text or "{}")
    return {k: (dt_out(v["$dt"]) if isinstance(v, dict) and "$dt" in v else v) for k, v in raw.items()}


# -- connections ---------------------------------------------------------------------------------
_MEMORY: Dict[str, Tuple[sqlite3.Connection, threading.RLock]] = {}
_MEMORY_LOCK = threading.Lock()


def connect(uri: str, database: str, create: bool,
            read_only: bool = False) -> Tuple[sqlite3.Connection, threading.RLock, str, bool]:
    """(connection, lock, label, owns_connection). `memory:` is a fresh database each time;
    `memory:NAME` is shared by every store opened with that name in this process."""
    conn: Optional[sqlite3.Connection]
    if uri.startswith("memory:"):
        name = uri[len("memory:"):]
        if name:
            with _MEMORY_LOCK:
                if name not in _MEMORY:
                    if not create:
                        raise StoreError(f"no store at {uri} (nothing was created)")
                    _MEMORY[name] = (_memory_conn(), threading.RLock())
                conn, lock = _MEMORY[name]
            _init(conn, uri)
            return conn, lock, uri, False
        conn = _memory_conn()
        _init(conn, uri)
        return conn, threading.RLock(), "memory:", True
    path = uri[len("file:"):]
    if not path:
        raise ConfigError("store.uri 'file:' needs a path, e.g. file:./tgsync-data")
    path = os.path.expanduser(path)
    db = os.path.join(path, DB_FILE.format(database=plain_database_name(database)))
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(f"store {uri} is damaged: {path} is a file, not the store's directory")
    exists = _exists(db, uri)
    if not exists:
        if not create:
            raise StoreError(f"no store at {uri} (nothing was created; check store.uri or --store)")
        try:
            make_private_dirs(path)
            os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
        except PermissionError:
            raise StoreError(_denied(uri, _nearest_existing(path), "create a store in")) from None
        except OSError as exc:
            raise StoreError(f"store {uri}: cannot create {db} ({exc.strerror})") from exc
    elif os.path.isdir(db):
        raise StoreError(f"store {uri} is damaged: {db} is a directory, not a database file")
    if not os.access(db, os.R_OK):
        raise StoreError(_denied(uri, db, "read"))
    if read_only:
        conn = _open_read_only(db, path, uri)
        try:
            check_integrity(conn, uri)
        except BaseException:
            conn.close()
            raise
    else:
        if not (os.access(db, os.W_OK) and os.access(path, os.W_OK)):
            raise StoreError(_denied(uri, db if not os.access(db, os.W_OK) else path, "write"))
        conn = _open_read_write(db, uri)
    _init(conn, uri, create and not read_only)
    return conn, threading.RLock(), uri, True


def _exists(db: str, uri: str) -> bool:
    """Whether the database file is there; a directory we may not enter is a permission
    problem, never "no store"."""
    try:
        os.stat(db)
        return True
    except FileNotFoundError:
        return False
    except PermissionError:
        raise StoreError(_denied(uri, os.path.dirname(db), "read")) from None


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _denied(uri: str, where: str, what: str) -> str:
    """Permission denied, naming who is asking and who owns the file or directory."""
    import pwd

    def name(uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"uid {uid}"

    try:
        st = os.stat(where)
        owner = f"owned by {name(st.st_uid)}, mode {st.st_mode & 0o777:04o}"
    except OSError:
        owner = "not accessible"
    return (f"store {uri}: permission denied: user {name(os.geteuid())} may not {what} {where} "
            f"({owner}); run as its owner or ask them for access")


def _open_read_only(db: str, path: str, uri: str) -> sqlite3.Connection:
    """A connection that never writes (roster, clubs, history, member, stats). SQLite reads a
    WAL store through its `-shm` file; a user who may not create that file (a store owned by
    someone else) still reads it when no writer has changes pending (no `-wal` left), as an
    immutable file."""
    def attempt(flags: str) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{db}?{flags}", uri=True, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    try:
        return attempt("mode=ro")
    except sqlite3.OperationalError as exc:
        if os.access(path, os.W_OK) or "readonly" not in str(exc) and "unable to open" not in str(exc):
            raise StoreError(f"store {uri} is busy or damaged ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store {uri} is damaged or not a tgsync store ({exc})") from None
    wal = db + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        raise StoreError(_denied(uri, path, "write") + " (a running tgsync has changes not yet in the "
                         "main file, and reading them needs write access to the directory)")
    try:
        return attempt("mode=ro&immutable=1")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store {uri} is damaged or not a tgsync store ({exc})") from None


def _open_read_write(db: str, uri: str) -> sqlite3.Connection:
    deadline = time.monotonic() + 30.0
    while True:
        conn = None
        try:
            conn = sqlite3.connect(db, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            # switching a new file to WAL can answer "locked" at once, without waiting, while
            # another process does the same: two commands opening one new store at once retry
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":  # pragma: no cover - a filesystem without shared memory
                conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA synchronous = NORMAL")
            check_integrity(conn, uri)
            return conn
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise StoreError(f"store {uri} is busy or damaged ({exc})") from None
            time.sleep(0.05)
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise StoreError(f"store {uri} is damaged or not a tgsync store ({exc})") from None
        except StoreError:
            if conn is not None:
                conn.close()
            raise


def _memory_conn() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)


def _init(conn: sqlite3.Connection, uri: str, create: bool = True) -> None:
    """Create tgsync's tables in an empty file, accept a file that is ours, refuse any other.

    Ours means the header's application_id is tgsync's (or, for a store written before it was
    stamped, the `meta` table holds tgsync's schema version). A SQLite file that holds other
    tables (another program's database under the store's name) is never written into, whatever
    the command: adding tgsync's tables to it would corrupt someone else's data."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        have = None
        if tables:
            try:
                have = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            except sqlite3.OperationalError:
                have = None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store {uri} is damaged or not a tgsync store ({exc})") from None
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(f"store {uri} is not a tgsync store (another program's SQLite file, "
                         f"application_id {app_id}); refusing to write into it")
    if have is not None:
        if int(have[0]) > SCHEMA_VERSION:
            raise StoreError(f"store {uri} was written by a newer tgsync (schema {have[0]})")
        if create and int(have[0]) < SCHEMA_VERSION:
            _migrate(conn, uri, int(have[0]))
        elif int(have[0]) < SCHEMA_VERSION:
            _read_older(conn)  # a reading command leaves the file as it is
        if app_id == 0 and create:
            _stamp(conn, uri)
        if create:
            _add_requests(conn, uri)  # a store made before the requests table gets it now
        return
    if tables:
        what = "its schema marker is missing" if app_id == APPLICATION_ID else "it holds another program's tables"
        raise StoreError(f"store {uri} is damaged or not a tgsync store ({what}); refusing to write into it")
    if not create:
        raise StoreError(f"store {uri} is damaged or not a tgsync store (no schema version)")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store {uri} is damaged or not a tgsync store ({exc})") from None
    try:
        if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] and not _has_meta(conn):
            raise StoreError(f"store {uri} is not a tgsync store (another program's tables); "
                             "refusing to write into it")
        for stmt in filter(str.strip, (SCHEMA + ";" + REQUESTS_SCHEMA).split(";")):
            conn.execute(stmt)
        for stmt in TRIGGERS:
            conn.execute(stmt)
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.DatabaseError):
            raise StoreError(f"store {uri} is damaged or not a tgsync store ({exc})") from None
        raise


def _has_meta(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() is not None
    except sqlite3.OperationalError:
        return False


def _stamp(conn: sqlite3.Connection, uri: str) -> None:
    """A store written before the header was stamped gets the stamp (one header write)."""
    try:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.OperationalError:  # busy: the next command stamps it; the meta row suffices
        pass


def check_integrity(conn: sqlite3.Connection, uri: str) -> None:
    """`PRAGMA quick_check` before any command reads or writes: a file with zeroed or torn
    pages is refused whole, rather than written into around the damage (which makes it worse
    and hides it). Reads every page once: tens of milliseconds per 10 MB, once per command."""
    try:
        rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        raise StoreError(f"store {uri} is damaged ({exc}); restore it from a backup") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"store {uri} is damaged ({exc}); restore it from a backup") from None
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    if problems:
        first = " ".join(problems[0].split())[:120]
        raise StoreError(f"store {uri} is damaged (integrity check: {first}); restore it from a backup")


def plain_database_name(database: str) -> str:
    """The database name becomes a file name in the store's directory, so it must be a plain
    name: a path separator or `..` would put the store (and its writes) anywhere on disk."""
    if (not database or len(database) > 64 or any(c in database for c in "/\\\0:")
            or database.startswith(".") or not database.isprintable()):
        shown = repr(database[:40])
        raise ConfigError(f"store.database must be a plain name (letters, digits, _ - .; no path "
                          f"separators), got {shown}")
    return database


def _add_requests(conn: sqlite3.Connection, uri: str) -> None:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'").fetchone():
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
        for stmt in filter(str.strip, REQUESTS_SCHEMA.split(";")):
            conn.execute(stmt)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise StoreError(f"store {uri}: cannot add the requests table ({exc})") from None


def _migrate(conn: sqlite3.Connection, uri: str, have: int) -> None:
    """Bring a store written by an older tgsync up to this schema, in one transaction (another
    process may be doing the same: the version is read again under the write lock)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        now = int(conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0])
        for version in range(now + 1, SCHEMA_VERSION + 1):
            for stmt in MIGRATIONS.get(version, ()):
                conn.execute(stmt)
        for stmt in TRIGGERS:
            conn.execute(stmt)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"store {uri} (schema {have}) could not be upgraded ({exc})") from None


def _read_older(conn: sqlite3.Connection) -> None:
    """A store of an older schema, opened by a command that only reads: this connection sees the
    member columns added since as empty (a temporary view, found before the file's own table),
    so the file is not written; the next writing command upgrades it."""
    cols = {r[1] for r in conn.execute("PRAGMA main.table_info(memberships)")}
    extra = [f"NULL AS {c}" for c in ("prior_at", "confirmed_at", "seen_times") if c not in cols]
    if extra:
        conn.execute("CREATE TEMP VIEW IF NOT EXISTS memberships AS SELECT *, "
                     f"{', '.join(extra)} FROM main.memberships")


def member_in(col: str, v: Any) -> Any:
    """A member field as its column holds it."""
    if col in MEMBER_TIMES:
        return dt_in(v)
    if col in MEMBER_TIME_LISTS:
        return json.dumps([dt_in(t) for t in v]) if v else None
    return v


def member_out(col: str, v: Any) -> Any:
    """A member field as the document shows it."""
    if col in MEMBER_TIMES:
        return dt_out(v)
    if col in MEMBER_TIME_LISTS:
        return [dt_out(t) for t in json.loads(v)] if v else None
    return v
