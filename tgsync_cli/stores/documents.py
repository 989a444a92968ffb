"""The store: clubs and users over the pymongo API (MongoDB, litemongo `file:`, mongomock `memory:`).

Every method is one or a few round trips; `ops` counts them (each call that reaches the
database, a bulk write counting once) so `simulate` and `scripts/bench` can report `db_ops`.
Member writes are single-document atomic updates guarded by `status_at`, so two processes
applying the same events can never duplicate a member or move a status backwards in time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError, PyMongoError

from tgsync_cli.core.errors import ConfigError, StoreError, StoreUnavailable
from tgsync_cli.core.events import Person
from tgsync_cli.core.store import forgotten_key

DEFAULT_DB = "ayda_run"
TOMBSTONE_DAYS = 7
PUSH_CHUNK = 1000  # members per atomic push: ~200 KB, far below MongoDB's 16 MB document limit


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class _Counted:
    """A collection proxy that counts each call reaching the database and maps driver errors."""

    _LOCAL = frozenset({"name", "full_name", "database"})

    def __init__(self, coll, store: "Store"):
        self._coll = coll
        self._store = store

    def __getattr__(self, name):
        attr = getattr(self._coll, name)
        if name in self._LOCAL or not callable(attr):
            return attr

        if name == "bulk_write" and self._store.embedded:
            attr = self._embedded_bulk

        def call(*args, **kwargs):
            self._store.before_call(name)
            self._store.ops += 1
            try:
                with self._store.lock:
                    result = attr(*args, **kwargs)
                self._store.after_call(name)
                if name == "find" and self._store.embedded:
                    return _LockedCursor(result, self._store.lock)
                return result
            except DuplicateKeyError:
                raise
            except (PyMongoError, OSError) as exc:  # connection refused, timeouts, sqlite I/O
                raise StoreUnavailable(f"store call {name} failed: {type(exc).__name__}") from exc

        return call

    def _embedded_bulk(self, ops, ordered: bool = True):
        """The embedded engines run in-process; they apply a bulk's updates one by one (mongomock
        cannot take current pymongo's UpdateOne), still one round trip from the caller's view."""
        matched = modified = 0
        for op in ops:
            r = self._coll.update_one(op._filter, op._doc, upsert=op._upsert)
            matched += r.matched_count
            modified += r.modified_count
        return _BulkResult(matched, modified)


class _BulkResult(NamedTuple):
    matched_count: int
    modified_count: int


class _LockedCursor:
    """An embedded-store cursor that reads its documents under the store lock."""

    def __init__(self, cursor, lock):
        self._cursor, self._lock = cursor, lock

    def __getattr__(self, name):
        attr = getattr(self._cursor, name)
        if name in ("sort", "limit", "skip", "batch_size"):
            return lambda *a, **k: _LockedCursor(attr(*a, **k), self._lock)
        return attr

    def __iter__(self):
        with self._lock:
            docs = list(self._cursor)
        return iter(docs)


class Store:
    """Clubs (with embedded members) and users. `before_call` is a hook for fault injection."""

    def __init__(self, db, uri_label: str = "store", embedded: bool = True):
        self.ops = 0
        self.embedded = embedded
        # The embedded engines are not thread-safe (one SQLite connection per collection):
        # serialise their calls so the serve worker thread and CLI threads can share a store.
        self.lock = threading.RLock() if embedded else contextlib.nullcontext()
        self.uri_label = uri_label
        self._db = db
        self.clubs = _Counted(db["clubs"], self)
        self.users = _Counted(db["users"], self)
        self.departures = _Counted(db["departures"], self)
        self.forgotten = _Counted(db["forgotten"], self)  # issue 12.2, see note_forgotten
        self._client = None

    def before_call(self, name: str) -> None:
        """Overridden by fault-injecting wrappers in tests; a no-op in production."""

    def after_call(self, name: str) -> None:
        """Called once a call's write reached the database: a fault raised here is a reply lost
        after the write (sim/faults.py). A no-op in production."""

    # -- schema ---------------------------------------------------------------------------
    def ensure_indexes(self) -> None:
        self.clubs.create_index("telegram_group_id", unique=True)
        self.clubs.create_index("previous_group_ids")
        self.users.create_index("telegram_id", unique=True)
        self.departures.create_index([("club_id", 1), ("telegram_id", 1)], unique=True)
        self.forgotten.create_index("at")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing is best effort
                pass

    # -- clubs ----------------------------------------------------------------------------
    def club_by_group(self, chat_id: int) -> Optional[dict]:
        return self.clubs.find_one({"$or": [{"telegram_group_id": chat_id},
                                            {"previous_group_ids": chat_id}]})

    def club_by_id(self, club_id: str) -> Optional[dict]:
        return self.clubs.find_one({"_id": club_id})

    def all_clubs(self) -> List[dict]:
        return list(self.clubs.find({}).sort("telegram_group_id", 1))

    def club_index(self) -> List[dict]:
        """One query for the in-memory club map and the member cache warm-up."""
        return list(self.clubs.find({}, {"telegram_group_id": 1, "previous_group_ids": 1, "name": 1,
                                         "sync": 1, "members.telegram_id": 1,
                                         "members.status": 1}))

    def create_club(self, chat_id: int, name: str, created_by: Optional[str],
                    sync: Dict[str, Any]) -> Tuple[dict, bool]:
        """Insert-if-absent by telegram_group_id; returns (club, created)."""
        doc = {"_id": new_id("club"), "name": name, "telegram_group_id": chat_id,
               "created_by": created_by, "members": [], "sync": dict(sync)}
        try:
            self.clubs.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            existing = self.club_by_group(chat_id)
            if existing is None:  # pragma: no cover - a delete raced us
                raise StoreError(f"club for chat {chat_id} vanished while being created")
            return existing, False

    def update_sync(self, club_id: str, fields: Dict[str, Any],
                    guard_at: Optional[datetime] = None) -> bool:
        """Set sync.* fields; with guard_at, only if sync.bot_status_at is not newer.

        True when the guard let the event through, even if nothing changed: an event retried
        after failing halfway finds its own fields already set and must still finish its work."""
        flt: Dict[str, Any] = {"_id": club_id}
        if guard_at is not None:
            flt["$or"] = [{"sync.bot_status_at": {"$lte": guard_at}},
                          {"sync.bot_status_at": None}]
        upd = {"$set": {f"sync.{k}": v for k, v in fields.items()}}
        return self.clubs.update_one(flt, upd).matched_count > 0

    def claim_welcome(self, club_id: str, token: Optional[str] = None) -> bool:
        """Atomically mark the welcome as posted; True only for the one caller who should post it.
        With a token (issue 12.6), also True when the claim already holds this token: a retry
        whose first claim reached the store but whose reply was lost."""
        sets: Dict[str, Any] = {"sync.welcome_posted": True}
        if token is not None:
            sets["sync.welcome_claim"] = token
        r = self.clubs.update_one({"_id": club_id, "sync.welcome_posted": {"$ne": True}},
                                  {"$set": sets})
        if r.modified_count > 0:
            return True
        if token is None:
            return False
        doc = self.clubs.find_one({"_id": club_id}, {"sync.welcome_claim": 1})
        return bool(doc) and (doc.get("sync") or {}).get("welcome_claim") == token

    # issue 12.6 (reliability): a claim is released unless the post is confirmed
    def release_welcome(self, club_id: str, token: str) -> None:
        """The post did not happen: give the claim back, if it is still this token's."""
        self.clubs.update_one({"_id": club_id, "sync.welcome_claim": token},
                              {"$set": {"sync.welcome_posted": False},
                               "$unset": {"sync.welcome_claim": ""}})

    def confirm_welcome(self, club_id: str, token: str) -> None:
        """The post happened: the claim becomes final (welcome_posted stays true)."""
        self.clubs.update_one({"_id": club_id, "sync.welcome_claim": token},
                              {"$unset": {"sync.welcome_claim": ""}})

    def migrate_club(self, club_id: str, old_id: int, new_id_: int) -> None:
        self.clubs.update_one({"_id": club_id},
                              {"$set": {"telegram_group_id": new_id_},
                               "$addToSet": {"previous_group_ids": old_id}})

    # -- users ----------------------------------------------------------------------------
    def upsert_user(self, p: Person, at: datetime) -> str:
        doc = self.users.find_one_and_update(
            {"telegram_id": p.id},
            {"$set": _user_fields(p, at), "$setOnInsert": {"_id": new_id("user"), "created_at": at}},
            upsert=True, return_document=ReturnDocument.AFTER, projection={"_id": 1})
        return doc["_id"]

    def upsert_users(self, people: Sequence[Person], at: datetime) -> Dict[int, str]:
        """Bulk: one write for all accounts, one read for their ids."""
        if not people:
            return {}
        ops = [UpdateOne({"telegram_id": p.id},
                         {"$set": _user_fields(p, at),
                          "$setOnInsert": {"_id": new_id("user"), "created_at": at}}, upsert=True)
               for p in people]
        self.users.bulk_write(ops, ordered=False)
        ids = [p.id for p in people]
        return {d["telegram_id"]: d["_id"]
                for d in self.users.find({"telegram_id": {"$in": ids}}, {"telegram_id": 1})}

    def user_by_telegram_id(self, tid: int) -> Optional[dict]:
        return self.users.find_one({"telegram_id": tid})

    # -- members --------------------------------------------------------------------------
    def member(self, club_id: str, tid: int) -> Optional[dict]:
        doc = self.clubs.find_one({"_id": club_id, "members.telegram_id": tid},
                                  {"members": {"$elemMatch": {"telegram_id": tid}}})
        if not doc or not doc.get("members"):
            return None
        return doc["members"][0]

    def add_member(self, club_id: str, member: dict) -> bool:
        """Atomic insert-if-absent: the filter and the push are one document update."""
        r = self.clubs.update_one({"_id": club_id, "members.telegram_id": {"$ne": member["telegram_id"]}},
                                  {"$push": {"members": member}})
        return r.modified_count > 0

    def set_member(self, club_id: str, tid: int, at: datetime, current: dict, status: Optional[str] = None,
                   role: Optional[str] = None, strictly_newer: bool = False) -> bool:
        """Guarded update of one member: status by `status_at`, role by `role_at`, independently,
        so late and reordered events converge. Re-reads and retries if another writer raced us.
        Returns whether the status was applied."""
        for _ in range(3):
            change = member_change(club_id, tid, at, current, status, role, strictly_newer)
            if change is None:
                return False
            flt, upd, status_applied = change
            r = self.clubs.update_one(flt, upd)
            if r.matched_count:
                return status_applied
            current = self.member(club_id, tid)
            if current is None:
                return False
        return False

    @staticmethod
    def member_change(club_id: str, tid: int, at: datetime, current: dict, status: Optional[str],
                      role: Optional[str], strictly_newer: bool = False):
        """A guarded change to pass back in `add_members`' other_ops (None when it is stale)."""
        return member_change(club_id, tid, at, current, status, role, strictly_newer)

    def member_ops(self, ops: List[UpdateOne]):
        if ops:
            return self.clubs.bulk_write(ops, ordered=True)
        return None

    def add_members(self, club_id: str, docs: List[dict], other_ops: Sequence[UpdateOne] = ()) -> None:
        """Insert-if-absent for many members, with other member updates, in one bulk write.

        One atomic push per chunk, guarded on none of the chunk being there yet (the embedded
        engines copy the whole club per update, so a push per member is quadratic). A chunk
        that misses because a racing writer added one of its members is redone member by member.
        """
        ids = [d["telegram_id"] for d in docs]
        by_id = {d["telegram_id"]: d for d in docs}
        pushes = [UpdateOne({"_id": club_id, "members.telegram_id": {"$nin": chunk}},
                            {"$push": {"members": {"$each": [by_id[t] for t in chunk]}}})
                  for chunk in (ids[i:i + PUSH_CHUNK] for i in range(0, len(ids), PUSH_CHUNK))]
        ops = pushes + [op if isinstance(op, UpdateOne) else UpdateOne(op[0], op[1]) for op in other_ops]
        result = self.member_ops(ops)
        if not docs or (result is not None and getattr(result, "matched_count", 0) >= len(ops)):
            return
        now_in = {m["telegram_id"] for m in (self.clubs.find_one(
            {"_id": club_id}, {"members.telegram_id": 1}) or {}).get("members", [])}
        self.member_ops([UpdateOne({"_id": club_id, "members.telegram_id": {"$ne": t}},
                                   {"$push": {"members": by_id[t]}}) for t in ids if t not in now_in])

    def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime]) -> int:
        """One bulk write; never moves last_seen backwards."""
        if self.embedded and seen:
            with self.lock:  # its reads and writes go around _Counted
                return self._flush_last_seen_embedded(seen)
        ops = [_last_seen_op(cid, tid, at) for (cid, tid), at in seen.items()]
        if ops:
            self.clubs.bulk_write(ops, ordered=False)
        return len(ops)

    def _flush_last_seen_embedded(self, seen: Dict[Tuple[str, int], datetime]) -> int:
        """The embedded engines copy the whole club document on every update, so one update per
        member made a flush cost members × document size. Here, in process: read the clubs
        concerned, then one update per club setting members by position, its filter re-checking
        that each position still holds that member with the older last_seen it was read with (what
        MongoDB does server-side with arrayFilters, which the embedded engines lack). Still one
        round trip: nothing leaves the process. A club whose document changed in between misses
        and falls back to the per-member guarded updates."""
        by_club: Dict[str, Dict[int, datetime]] = {}
        for (cid, tid), at in seen.items():
            by_club.setdefault(cid, {})[tid] = at
        self.before_call("bulk_write")
        self.ops += 1  # one round trip from the caller's view, as a bulk write is
        raw = self._db["clubs"]
        try:
            docs = list(raw.find({"_id": {"$in": list(by_club)}},
                                 {"members.telegram_id": 1, "members.last_seen": 1}))
        except (PyMongoError, OSError) as exc:
            raise StoreUnavailable(f"store call bulk_write failed: {type(exc).__name__}") from exc
        ops = []
        for doc in docs:
            wanted = by_club[doc["_id"]]
            flt: Dict[str, Any] = {"_id": doc["_id"]}
            sets: Dict[str, Any] = {}
            for i, m in enumerate(doc.get("members") or ()):
                at = wanted.get(m.get("telegram_id"))
                cur = m.get("last_seen")
                if at is None or (cur is not None and cur >= at):
                    continue
                flt[f"members.{i}.telegram_id"] = m["telegram_id"]
                flt[f"members.{i}.last_seen"] = cur
                sets[f"members.{i}.last_seen"] = at
            if sets:
                ops.append((UpdateOne(flt, {"$set": sets}), doc["_id"]))
        if not ops:
            return 0
        missed = []
        for op, cid in ops:
            try:
                r = raw.update_one(op._filter, op._doc)
            except (PyMongoError, OSError) as exc:
                raise StoreUnavailable(f"store call bulk_write failed: {type(exc).__name__}") from exc
            if not r.matched_count:
                missed.extend(_last_seen_op(cid, tid, at) for tid, at in by_club[cid].items())
        if missed:  # a concurrent writer changed that club: the per-member guards decide
            self.clubs.bulk_write(missed, ordered=False)
        self.after_call("bulk_write")
        return len(seen)

    # -- departures (tombstones) -------------------------------------------------------------
    def record_departure(self, club_id: str, tid: int, status: str, at: datetime) -> None:
        """Remember a leave of someone with no membership, so an older join arriving later
        converges to the same document as in-order delivery. Holds ids and a time only."""
        existing = self.departures.find_one({"club_id": club_id, "telegram_id": tid})
        if existing is None:
            try:
                self.departures.insert_one({"club_id": club_id, "telegram_id": tid,
                                            "status": status, "at": at})
            except DuplicateKeyError:
                pass
        elif existing["at"] <= at:
            self.departures.update_one({"_id": existing["_id"], "at": {"$lte": at}},
                                       {"$set": {"status": status, "at": at}})

    def departure(self, club_id: str, tid: int) -> Optional[dict]:
        return self.departures.find_one({"club_id": club_id, "telegram_id": tid})

    def clear_departure(self, club_id: str, tid: int) -> None:
        self.departures.delete_one({"club_id": club_id, "telegram_id": tid})

    def prune_departures(self, now: datetime) -> None:
        self.departures.delete_many({"at": {"$lt": now - timedelta(days=TOMBSTONE_DAYS)}})

    # -- erasure ----------------------------------------------------------------------------
    def forget(self, tid: int) -> Dict[str, Any]:
        clubs = [d["_id"] for d in self.clubs.find({"members.telegram_id": tid}, {"_id": 1})]
        if clubs:
            self.clubs.update_many({"members.telegram_id": tid},
                                   {"$pull": {"members": {"telegram_id": tid}}})
        users = self.users.delete_many({"telegram_id": tid}).deleted_count
        deps = self.departures.delete_many({"telegram_id": tid}).deleted_count
        return {"clubs": clubs, "accounts": users, "departures": deps}


    # -- issue 12.2 (reliability helper): `forget` tells running `serve`s through the store ----
    def note_forgotten(self, tid: int, at: datetime) -> None:
        """Record that one person was erased at `at` (naive UTC), so a running `serve` drops
        what it still holds for them (Pipeline polls `forgotten_since`). The note keeps no id:
        a salted hash (core.store.forgotten_key) and the time, pruned after FORGOTTEN_KEEP."""
        salt = uuid.uuid4().hex
        self.forgotten.delete_many({"at": {"$lt": at - FORGOTTEN_KEEP}})
        self.forgotten.insert_one({"salt": salt, "key": forgotten_key(salt, tid), "at": at})

    def forgotten_since(self, at: Optional[datetime]) -> List[Tuple[str, str, datetime]]:
        """(salt, key, when) of every erasure noted after `at` (all kept ones for None), oldest
        first; `forgotten_key(salt, id) == key` tells whether an id is the erased person."""
        flt = {} if at is None else {"at": {"$gt": at}}
        return [(d["salt"], d["key"], d["at"]) for d in self.forgotten.find(flt).sort("at", 1)]


FORGOTTEN_KEEP = timedelta(hours=1)  # a serve polls every few seconds


def member_change(club_id: str, tid: int, at: datetime, current: dict, status: Optional[str],
                  role: Optional[str], strictly_newer: bool = False):
    """(filter, update, status_applied) for a guarded member update, or None if nothing applies.
    The filter re-checks the guards the decision was made on, so a racing writer makes it miss."""
    s_at, r_at = current.get("status_at"), current.get("role_at")
    do_status = status is not None and (s_at is None or (s_at < at if strictly_newer else s_at <= at))
    do_role = role is not None and (r_at is None or r_at <= at)
    if not do_status and not do_role:
        return None
    elem: Dict[str, Any] = {"telegram_id": tid}
    sets: Dict[str, Any] = {}
    if do_status:
        elem["status_at"] = s_at
        sets.update({"members.$.status": status, "members.$.status_at": at})
    if do_role:
        elem["role_at"] = r_at
        sets.update({"members.$.role": role, "members.$.role_at": at})
    return {"_id": club_id, "members": {"$elemMatch": elem}}, {"$set": sets}, do_status


def _user_fields(p: Person, at: datetime) -> Dict[str, Any]:
    return {"telegram_id": p.id, "username": p.username, "first_name": p.first_name,
            "last_name": p.last_name, "language_code": p.language_code, "updated_at": at}


def open_store(uri: str, database: str = DEFAULT_DB) -> Store:
    """`mongodb://…`, `mongodb+srv://…`, `file:PATH` (litemongo on SQLite), `memory:` (mongomock)."""
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        import pymongo

        try:
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, connect=False)
        except Exception as exc:
            raise ConfigError(f"store.uri is not a valid MongoDB URI ({type(exc).__name__})") from exc
        label = redact_uri(uri)
    elif uri.startswith("file:"):
        path = uri[len("file:"):]
        if not path:
            raise ConfigError("store.uri 'file:' needs a path, e.g. file:./tgsync-data")
        import litemongo
        import litemongo.sqlite_store

        litemongo.sqlite_store.sqlite3 = _CrossThreadSqlite()
        client = litemongo.connect(_litemongo_path(path))
        label = uri
    elif uri == "memory:" or uri.startswith("memory:"):
        import mongomock

        client = mongomock.MongoClient()
        label = "memory:"
    else:
        raise ConfigError("store.uri must start with mongodb://, mongodb+srv://, file: or be memory: "
                          f"(got {redact_uri(uri)!r})")
    store = Store(client[database], label, embedded=not uri.startswith("mongodb"))
    if uri.startswith("file:"):
        store.lock = _ProcessLock(os.path.join(_litemongo_path(path), ".tgsync-lock"))
    store._client = client
    store.ensure_indexes()
    store.ops = 0  # schema setup is not part of a run's round trips
    return store


class _ProcessLock:
    """The embedded `file:` engine updates a document by reading it, changing it in Python and
    writing it back, so two processes writing the same club lose one of the writes (found by the
    process soak: `forget` in one process erased members `serve` had just added in another). The
    store's lock is therefore also an exclusive lock on a file beside the data, held for each
    call: a re-entrant thread lock plus flock(2), taken once per outermost holder."""

    def __init__(self, path: str):
        self._thread = threading.RLock()
        self._path = path
        self._fd: Optional[int] = None
        self._depth = 0

    def __enter__(self):
        self._thread.acquire()
        if self._depth == 0:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()


class _CrossThreadSqlite:
    """sqlite3 as litemongo sees it, with connections usable from any thread (calls are
    serialised by Store.lock), so a store opened by `serve` can be used by its worker thread."""

    def __getattr__(self, name):
        return getattr(sqlite3, name)

    @staticmethod
    def connect(*args, **kwargs):
        kwargs.setdefault("check_same_thread", False)
        return sqlite3.connect(*args, **kwargs)


def _litemongo_path(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return os.path.abspath(path)


def redact_uri(uri: str) -> str:
    """mongodb://user:secret@host → mongodb://***@host: credentials never reach output."""
    if "://" in uri and "@" in uri.split("://", 1)[1]:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return uri


def _last_seen_op(club_id: str, tid: int, at: datetime) -> UpdateOne:
    """Set one member's last_seen, only forwards in time."""
    return UpdateOne({"_id": club_id, "members": {"$elemMatch": {
        "telegram_id": tid, "$or": [{"last_seen": {"$lt": at}}, {"last_seen": None}]}}},
        {"$set": {"members.$.last_seen": at}})
