"""The MongoDB backend: the seed's documents exactly (`clubs` with embedded members,
`users`, `membership_log`, `departures`), for the Ayda Run app that reads them.

Each observation is decided by the same pure rule as the SQLite backend (`core.store.decide`) on
the member as read, then written with a filter that re-checks every field the decision read
(compare-and-set on the array element via the positional operator, or a `$push` guarded on the
member's absence). A racing writer makes the write miss; the call re-reads and decides again, so
concurrent processes converge without transactions. A first sighting's account is an upsert on
the unique telegram_id, retried on the duplicate-key race. Works on mongomock too (tests), which
lacks array filters and current pymongo bulk ops: there bulks are applied one by one.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, cast, overload

from tgsync_cli.core.documents import (
    ClubDoc,
    ClubRef,
    DepartureDoc,
    Documents,
    ForgetReport,
    UserDoc,
)
from tgsync_cli.core.errors import ConfigError, StoreConflict, StoreError, StoreUnavailable
from tgsync_cli.core.events import Person
from tgsync_cli.core.store import ClubIndex, account_fields, forgotten_key
from tgsync_cli.stores.common import FORGOTTEN_KEEP_SECONDS, TOMBSTONE_DAYS, PartsStore, member_doc, new_id, redact_uri
from tgsync_cli.stores.mongo_accounts import FlushedAccounts, account_time_ops, date_account_back
from tgsync_cli.stores.mongo_db import MongoDb, cause  # noqa: F401 (cause re-exported)
from tgsync_cli.stores.mongo_insights import MongoInsights
from tgsync_cli.stores.mongo_members import RETRIES, MongoMembers
from tgsync_cli.stores.mongo_requests import MongoRequests
from tgsync_cli.stores.mongo_shapes import (
    TimeForm,
    as_tid,
    member_entries,
    read_member,
    read_sync,
    read_user,
    tid_match,
    time_cmp,
)


# Club-document fields only this backend reads: the re-warm version, the departure-note ids and
# the membership_log outbox (mongo_members.py). Reads render the club document without them.
INTERNAL_CLUB_KEYS = ("version", "departed_ids", "log_pending")


class MongoStore(PartsStore):
    """Made of parts: `db` (the collections, every round trip counted), `members` (member writes,
    the outbox, the last_seen flush) and `insights` (log, activity, reconcile figures)."""

    members: MongoMembers
    insights: MongoInsights

    def __init__(self, db: Any, label: str, client: Any = None) -> None:
        self.uri_label = label
        self.atomic_listings = False  # a listing is written member by member: a prefix may land
        self.db = MongoDb(db, label)
        self._db = db
        self._client = client
        self._call, self._bulk = self.db.call, self.db.bulk
        self.clubs, self.users = self.db.clubs, self.db.users
        self.log, self.departures = self.db.log, self.db.departures
        self.activity, self.reconciles = self.db.activity, self.db.reconciles
        self.forgotten = self.db.forgotten
        self.insights = MongoInsights(self.db)
        self.members = MongoMembers(self.db, self._upsert_account, self.insights, self._date_account_back,
                                    FlushedAccounts(self.db, lambda doc: not app_account(doc)).date_back)
        self.requests = MongoRequests(self.db)
        # how times are written per collection (the app's form, found at open: mongo_shapes.detect);
        # one dict shared with the parts through `db`
        self.forms: Dict[str, TimeForm] = self.db.forms
        self.index_warning: Optional[str] = None  # set when tgsync's indexes are not there

    @property
    def ops(self) -> int:
        return self.db.ops

    @ops.setter
    def ops(self, value: int) -> None:
        self.db.ops = value

    def settle(self) -> None:
        self.members.settle()

    def pending_log(self, flt: Optional[dict] = None) -> List[dict]:
        return self.insights.pending_log(flt)


    def ensure_indexes(self) -> None:
        """Every index (mongo_indexes.py), on a database tgsync is creating or by `store init`."""
        from tgsync_cli.stores.mongo_indexes import ensure

        ensure(self._db)

    def close(self) -> None:
        try:
            self.settle()
        except Exception:  # the entries stay in the outbox; the next cold start moves them
            pass
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing is best effort
                pass

    # -- clubs -------------------------------------------------------------------------------------
    @overload
    @staticmethod
    def _render(doc: dict) -> ClubDoc: ...
    @overload
    @staticmethod
    def _render(doc: None) -> None: ...
    @staticmethod
    def _render(doc: Optional[dict]) -> Optional[ClubDoc]:
        if doc is None:
            return None
        out = {k: v for k, v in doc.items() if k not in INTERNAL_CLUB_KEYS}
        out["members"] = [member_doc(read_member(m)) for m in member_entries(doc)]
        if "telegram_group_id" in out:
            out["telegram_group_id"] = as_tid(out["telegram_group_id"])
        if "sync" in out:
            out["sync"] = read_sync(out["sync"])
        return cast(ClubDoc, out)

    def club_by_group(self, chat_id: int) -> Optional[ClubDoc]:
        return self._render(self._call("club_by_group", self.clubs.find_one, {"$or": [
            {"telegram_group_id": tid_match(chat_id)}, {"previous_group_ids": chat_id}]}))

    def club_by_id(self, club_id: str) -> Optional[ClubDoc]:
        return self._render(self._call("club_by_id", self.clubs.find_one, {"_id": club_id}))

    def club_by_username(self, username: str) -> Optional[ClubDoc]:
        # Telegram usernames are case-insensitive (so is the embedded backend's look-up)
        name = re.escape(username.lstrip("@"))
        return self._render(self._call("club_by_username", self.clubs.find_one,
                                       {"username": {"$regex": f"^{name}$", "$options": "i"}}))

    def all_clubs(self) -> List[ClubDoc]:
        docs = [self._render(d) for d in self._call(  # a club with no Telegram group is the app's
            "all_clubs", lambda: list(self.clubs.find({"telegram_group_id": {"$nin": [None]}})))]
        return sorted((d for d in docs if d is not None and d.get("telegram_group_id") is not None),
                      key=lambda d: d["telegram_group_id"])

    def club_index(self, known: Optional[Dict[str, int]] = None) -> ClubIndex:
        """Cold start: one query. Re-warm: one query for versions, one more only for the clubs
        that changed."""
        head = {"telegram_group_id": 1, "previous_group_ids": 1, "name": 1, "username": 1, "sync": 1, "version": 1}
        if known is None:  # also the outbox a stopped process left: moved at the next flush
            docs = self._call("club_index", lambda: list(self.clubs.find(
                {}, self.db.fields({**head, "members.telegram_id": 1, "members.status": 1, "log_pending._id": 1}))))
            for d in docs:
                if d.get("log_pending"):
                    self.members.touched(d["_id"])
        else:
            heads = self._call("club_index", lambda: list(self.clubs.find({}, head)))
            changed = [d["_id"] for d in heads if known.get(d["_id"]) != d.get("version", 0)]
            docs = []
            if changed:
                fields = self.db.fields({**head, "members.telegram_id": 1, "members.status": 1,
                                         "log_pending._id": 1})
                docs = self._call("club_index", lambda: list(self.clubs.find({"_id": {"$in": changed}}, fields)))
                for d in docs:  # entries another writer (or a flush's reactivation) left
                    if d.get("log_pending"):
                        self.members.touched(d["_id"])
            have = {d["_id"] for d in heads}
        out = ClubIndex()
        for d in docs:
            gid = as_tid(d.get("telegram_group_id"))
            if gid is None:  # the app's club, with no Telegram group (yet)
                continue
            tids = [(as_tid(m.get("telegram_id")), m) for m in member_entries(d)]
            self.members.remember(d["_id"], {t for t, _ in tids if t is not None})
            out.clubs.append({"_id": d["_id"], "telegram_group_id": gid,
                              "name": d.get("name"), "username": d.get("username"),
                              "previous_group_ids": d.get("previous_group_ids") or [],
                              "sync": d.get("sync") or {}, "version": d.get("version", 0),
                              "active": [t for t, m in tids if t is not None and m.get("status") == "active"]})
        if known:
            out.removed = [c for c in known if c not in have]
        return out

    def create_club(self, chat_id: int, name: str, created_by: Optional[str], sync: Dict[str, Any],
                    username: Optional[str] = None) -> Tuple[ClubDoc, bool]:
        form = self.forms["clubs"]
        doc = {"_id": new_id("club"), "name": name, "telegram_group_id": chat_id,
               "created_by": created_by, "members": [], "sync": {k: form.out(v) for k, v in sync.items()},
               "version": 0}
        if username:
            doc["username"] = username
        existing = self.club_by_group(chat_id)
        if existing is not None:
            return existing, False
        try:
            self._call("create_club", self.clubs.insert_one, doc)
            return self._render(doc), True
        except StoreConflict:
            existing = self.club_by_group(chat_id)
            if existing is None:  # pragma: no cover - a delete raced us
                raise StoreError(f"club for chat {chat_id} vanished while being created") from None
            return existing, False

    def update_sync(self, club_id: str, fields: Dict[str, Any], guard_at: Optional[datetime] = None) -> bool:
        flt: Dict[str, Any] = {"_id": club_id}
        if guard_at is not None:
            flt["$or"] = [*time_cmp("sync.bot_status_at", "$lte", guard_at), {"sync.bot_status_at": None}]
        form = self.forms["clubs"]
        upd = {"$set": {f"sync.{k}": form.out(v) for k, v in fields.items()}, "$inc": {"version": 1}}
        return self._call("update_sync", self.clubs.update_one, flt, upd).matched_count > 0

    def claim_welcome(self, club_id: str, token: Optional[str] = None) -> bool:
        """True for the one caller who should post the welcome, and again for the same token: a
        retry whose first claim reached the store but whose reply was lost."""
        sets: Dict[str, Any] = {"sync.welcome_posted": True}
        if token is not None:
            sets["sync.welcome_claim"] = token
        r = self._call("claim_welcome", self.clubs.update_one,
                       {"_id": club_id, "sync.welcome_posted": {"$ne": True}}, {"$set": sets})
        if r.modified_count > 0:
            return True
        if token is None:
            return False
        doc = self._call("claim_welcome", self.clubs.find_one, {"_id": club_id}, {"sync.welcome_claim": 1})
        return bool(doc) and (doc.get("sync") or {}).get("welcome_claim") == token

    def release_welcome(self, club_id: str, token: Optional[str] = None) -> None:
        """The post did not happen: give the claim back, if it is still this token's."""
        flt: Dict[str, Any] = {"_id": club_id}
        if token is not None:
            flt["sync.welcome_claim"] = token
        self._call("release_welcome", self.clubs.update_one, flt,
                   {"$set": {"sync.welcome_posted": False}, "$unset": {"sync.welcome_claim": ""}})

    def confirm_welcome(self, club_id: str, token: str) -> None:
        """The post happened: the claim becomes final (welcome_posted stays true)."""
        self._call("confirm_welcome", self.clubs.update_one, {"_id": club_id, "sync.welcome_claim": token},
                   {"$unset": {"sync.welcome_claim": ""}})

    def migrate_club(self, club_id: str, old_id: int, new_id_: int) -> None:
        self._call("migrate_club", self.clubs.update_one, {"_id": club_id},
                   {"$set": {"telegram_group_id": new_id_}, "$addToSet": {"previous_group_ids": old_id},
                    "$inc": {"version": 1}})

    def set_club_username(self, club_id: str, username: Optional[str]) -> None:
        self._call("set_club_username", self.clubs.update_one, {"_id": club_id},
                   {"$set": {"username": username.lstrip("@") if username else None}})

    # -- accounts ----------------------------------------------------------------------------------
    def _upsert_account(self, p: Person, at: datetime, keep_names: bool = False) -> str:
        from pymongo import ReturnDocument

        form = self.forms["users"]
        f = {k: form.out(v) for k, v in account_fields(p, at).items()}
        f.pop("telegram_id")  # set on insert only: an id the app stored as a string stays one
        new = {"_id": new_id("user"), "telegram_id": p.id, "created_at": form.out(at)}
        if keep_names:
            upd = {"$setOnInsert": {**new, **f, "username": None, "last_name": None,
                                    "language_code": None}}
        else:
            upd = {"$setOnInsert": {**new, **f}}
        for _ in range(RETRIES):  # two processes upserting one new user: the loser retries as an update
            try:
                doc = self._call("upsert_user", self.users.find_one_and_update, {"telegram_id": tid_match(p.id)}, upd,
                                 upsert=True, return_document=ReturnDocument.AFTER)
            except StoreConflict:
                continue
            # met again: created_at back to the earliest event, names and updated_at to the newest
            for flt, change in account_time_ops(doc, doc["_id"] == new["_id"], at, f, form,
                                                not app_account(doc), keep_names):
                self._call("upsert_user", self.users.update_one, flt, change)
            return doc["_id"]
        raise StoreUnavailable(f"{self.uri_label}: account {p.id} kept colliding")  # pragma: no cover

    def _date_account_back(self, tid: int, joined: datetime, was: datetime) -> None:
        date_account_back(self._call, self.users, self.clubs, {"telegram_id": tid_match(tid)}, joined, was,
                          self.forms["users"], lambda doc: not app_account(doc))

    def upsert_user(self, p: Person, at: datetime) -> str:
        return self._upsert_account(p, at)

    def user_by_telegram_id(self, tid: int) -> Optional[UserDoc]:
        doc = read_user(self._call("user_by_telegram_id", self.users.find_one, {"telegram_id": tid_match(tid)}))
        return cast(Optional[UserDoc], doc)

    def set_dm_blocked(self, tid: int, blocked: bool, at: datetime) -> bool:
        r = self._call("set_dm_blocked", self.users.update_one, {"telegram_id": tid_match(tid)},
                       {"$set": {"dm_blocked": blocked}})
        if r.matched_count:  # updated_at only forwards: a late block does not date the account back
            self._call("set_dm_blocked", self.users.update_one, {"telegram_id": tid_match(tid), "$or": [
                *time_cmp("updated_at", "$lt", at), {"updated_at": None}]},
                {"$set": {"updated_at": self.forms["users"].out(at)}})
        return r.matched_count > 0









    # -- departures, log, erasure --------------------------------------------------------------------
    def departures_for(self, club_id: str, tids: Iterable[int]) -> Dict[int, DepartureDoc]:
        want = set(tids)
        rows = self._call("departures_for", lambda: list(self.departures.find({"club_id": club_id})))
        return {d["telegram_id"]: d for d in rows if d["telegram_id"] in want}

    def prune_departures(self, now: datetime) -> int:
        return self._call("prune_departures", self.departures.delete_many,
                          {"at": {"$lt": now - timedelta(days=TOMBSTONE_DAYS)}}).deleted_count

    def forget_preview(self, tid: int) -> ForgetReport:
        clubs: List[ClubRef] = [{"club_id": d["_id"], "name": d.get("name"),
                                 "telegram_group_id": as_tid(d.get("telegram_group_id"))}
                 for d in self._call("forget_preview", lambda: list(self.clubs.find(
                     {"members.telegram_id": tid_match(tid)}, {"name": 1, "telegram_group_id": 1})))]
        users = self._call("forget_preview", lambda: list(self.users.find({"telegram_id": tid_match(tid)})))
        deps = self._call("forget_preview", self.departures.count_documents, {"telegram_id": tid})
        kept = [u["_id"] for u in users if app_account(u)]
        gone = [u["_id"] for u in users if not app_account(u)]
        created = self._call("forget_preview", self.clubs.count_documents,
                             {"created_by": {"$in": gone}, "telegram_group_id": {"$type": "number"}}) if gone else 0
        return {"clubs": clubs, "accounts": len(users), "departures": deps, "created_by_cleared": created,
                "app_account_kept": kept[0] if kept else None}

    def forget(self, tid: int) -> ForgetReport:
        self.settle()  # this process's outbox entries first, so the collection holds them
        self.members.forget_hint(tid)
        rep = self.forget_preview(tid)
        # every account holding the id, in any stored form (the app may hold two: 1 and "1")
        for user in self._call("forget", lambda: list(self.users.find({"telegram_id": tid_match(tid)}))):
            if app_account(user):  # the app's account: only its Telegram fields go
                self._call("forget", self.users.update_one, {"_id": user["_id"]},
                           {"$unset": dict.fromkeys(TELEGRAM_ACCOUNT_KEYS, "")})
                continue
            self._call("forget", self.clubs.update_many, {"created_by": user["_id"],
                                                          "telegram_group_id": {"$type": "number"}},
                       {"$set": {"created_by": None}})
            self._call("forget", self.users.delete_one, {"_id": user["_id"]})
        self._call("forget", self.clubs.update_many, {"$or": [
            {"members.telegram_id": tid_match(tid)}, {"departed_ids": tid}, {"log_pending.telegram_id": tid}]},
            {"$pull": {"members": {"telegram_id": tid_match(tid)}, "departed_ids": tid,
                       "log_pending": {"telegram_id": tid}}, "$inc": {"version": 1}})
        for d in self._call("forget", lambda: list(self.clubs.find({"log_pending.actor": tid}, {"_id": 1}))):
            self._actor_erased(d["_id"], tid)
        self._call("forget", self.departures.delete_many, {"telegram_id": tid})
        self._call("forget", self.log.delete_many, {"telegram_id": tid_match(tid)})
        self._call("forget", self.activity.delete_many, {"telegram_id": tid})
        self._call("forget", self.db.requests.delete_many, {"telegram_id": tid})
        self._call("forget", self.log.update_many, {"actor": tid}, {"$set": {"actor": None}})
        # again, last: another process moving its outbox read the person's entry before the pull
        # above and inserts it a round trip later (it reads the outbox, not its memory, so only
        # that far behind)
        self._call("forget", self.log.delete_many, {"telegram_id": tid_match(tid)})
        return rep

    def _actor_erased(self, club_id: str, tid: int) -> None:
        """Unmoved entries naming the person as actor: rewritten in place, each by its id."""
        doc = self._call("forget", self.clubs.find_one, {"_id": club_id}, {"log_pending": 1}) or {}
        for e in doc.get("log_pending") or []:
            if e.get("actor") == tid:
                self._call("forget", self.clubs.update_one, {"_id": club_id, "log_pending._id": e["_id"]},
                           {"$set": {"log_pending.$.actor": None}})

    def note_forgotten(self, tid: int, at: datetime) -> None:
        """Tell running serves that one person was erased (they poll `forgotten_since`). The note
        keeps no id: a salted hash and the time, pruned after an hour."""
        salt = uuid.uuid4().hex
        self._call("note_forgotten", self.forgotten.delete_many,
                   {"at": {"$lt": at - timedelta(seconds=FORGOTTEN_KEEP_SECONDS)}})
        self._call("note_forgotten", self.forgotten.insert_one,
                   {"salt": salt, "key": forgotten_key(salt, tid), "at": at})

    def forgotten_since(self, at: Optional[datetime]) -> List[Tuple[str, str, datetime]]:
        flt = {} if at is None else {"at": {"$gt": at}}
        rows = self._call("forgotten_since", lambda: list(self.forgotten.find(flt).sort("at", 1)))
        return [(d["salt"], d["key"], d["at"]) for d in rows]

    # -- whole store ---------------------------------------------------------------------------------
    def counts(self) -> Dict[str, int]:
        def run():
            members = sum(len(member_entries(d))
                          for d in self.clubs.find({}, self.db.fields({"members.telegram_id": 1})))
            pending = [e["_id"] for d in self.clubs.find({"log_pending.0": {"$exists": True}}, {"log_pending._id": 1})
                       for e in d.get("log_pending") or []]
            moved = self.log.count_documents({"_id": {"$in": pending}}) if pending else 0
            return {"clubs": self.clubs.count_documents({}), "memberships": members,
                    "users": self.users.count_documents({}), "departures": self.departures.count_documents({}),
                    "membership_log": self.log.count_documents({}) + len(pending) - moved,
                    "activity": self.activity.count_documents({}),
                    "reconciles": self.reconciles.count_documents({})}
        return self._call("counts", run)

    def export(self) -> Documents:
        from tgsync_cli.stores.mongo_copy import export_all

        return export_all(self)

    def import_documents(self, docs: Dict[str, List[dict]]) -> Dict[str, int]:
        from tgsync_cli.stores.mongo_copy import import_all

        return import_all(self, docs)

    def check(self) -> List[str]:
        from tgsync_cli.stores.mongo_indexes import missing_unique

        return [f"missing index {label}" for label in self._call("check", missing_unique, self._db)]


# the account fields tgsync writes; anything else on an account is the app's
TELEGRAM_ACCOUNT_KEYS = ("telegram_id", "username", "first_name", "last_name", "language_code", "dm_blocked")
TGSYNC_ACCOUNT_KEYS = ("_id", *TELEGRAM_ACCOUNT_KEYS, "created_at", "updated_at")


def app_account(user: Optional[Mapping[str, Any]]) -> bool:
    """An account that holds the app's fields too (an email, a phone): forget keeps it."""
    return user is not None and any(k not in TGSYNC_ACCOUNT_KEYS for k in user)


def open_mongo(uri: str, database: Optional[str] = None, create: bool = True, client=None,
               time_format: str = "auto") -> MongoStore:
    """The database the URI names (else `database`, else the default). With `create`, a
    database with none of the app's collections gets every index (tgsync is creating it); one
    that has them must have tgsync's unique indexes already (`tgsync store init`), else this
    refuses in one line. Read-only opens only note it (`index_warning`)."""
    from tgsync_cli.stores.mongo_database import database_for

    label = redact_uri(uri)
    name = database_for(uri, database)
    if client is None:
        import pymongo

        try:
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000,
                                         connect=False)
        except Exception as exc:
            raise ConfigError(f"store.uri {label} is not a valid MongoDB URI ({cause(exc)})") from exc
    store = MongoStore(client[name], label, client)
    try:
        prepare(store, name, create, time_format)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreUnavailable(f"{label}: cannot reach the database ({cause(exc)})") from exc
    return store


def prepare(store: MongoStore, name: str, create: bool, time_format: str) -> None:
    from tgsync_cli.stores import mongo_indexes
    from tgsync_cli.stores.mongo_shapes import detect, null_containers

    db = store._db
    store.forms.update(detect(db, time_format))  # the dict the parts share
    fresh = mongo_indexes.is_fresh(db)
    if fresh:  # no app collections: tgsync creates the database (a reader finds nothing yet)
        if create:
            mongo_indexes.ensure(db)
        return
    missing = [m for m in mongo_indexes.missing_unique(db) if m.split(".")[0] in mongo_indexes.APP_COLLECTIONS]
    if missing:  # refused before anything is written
        text = (f"{store.uri_label}: database {name!r} lacks tgsync's indexes ({', '.join(missing)}); "
                "run `tgsync store init` once to create them")
        if create:
            raise StoreError(text)
        store.index_warning = text
        return
    if create:  # tgsync's own collections are its own; the app's got theirs from `store init`
        mongo_indexes.ensure(db, only=[c for c in {w.collection for w in mongo_indexes.WANTED}
                                       if c not in mongo_indexes.APP_COLLECTIONS])
        null_containers(db)
