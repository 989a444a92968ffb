"""An Ayda Run app database as the app itself writes it, for tests to point tgsync at.

The seed's shapes, plus what an app with non-Telegram users holds: dates as ISO strings (with
`Z`, with an offset, without either), a club and accounts with no Telegram id yet, members the
app added itself, a `telegram_id` kept as a string, one as a double, app fields (`city`,
`coach_notes`) on clubs, members and accounts, an app role (`coach`). Built in a fresh database
on mongomock, or on a real server when TGSYNC_TEST_MONGO_URI names one.
"""

from __future__ import annotations

import copy
import os
import uuid
from typing import Any, Dict, List

import pytest

MONGO_URI = os.environ.get("TGSYNC_TEST_MONGO_URI")
GROUP = -1001777000          # the app's club that has a Telegram group
OTHER_GROUP = -1001777001    # a second one, its dates written with offsets
STRING_ID = 777333           # held by the app as "777333"
DOUBLE_ID = 777444           # held as 777444.0
COACH = 777555               # role "coach" in the app
PLAIN = 777666               # an ordinary member, string dates
APP_ONLY_USER = "user_app_only_1"

CLUBS: List[Dict[str, Any]] = [
    {"_id": "club_app_srg", "name": "SRG Almaty (app)", "telegram_group_id": GROUP, "city": "Almaty",
     "created_by": "user_srg_owner",
     "members": [
         {"user_id": "user_plain", "telegram_id": PLAIN, "username": "plain_runner", "first_name": "Plain",
          "role": "member", "status": "active", "joined_at": "2024-12-01T10:00:00Z",
          "last_seen": "2024-12-02T09:00:00Z", "source": "chat_member_event", "status_at": "2024-12-01T10:00:00Z",
          "city": "Almaty", "pace": "5:30"},
         {"user_id": "user_string", "telegram_id": str(STRING_ID), "username": "StringId", "first_name": "Str",
          "role": "member", "status": "active", "joined_at": "2024-12-01T11:00:00Z", "last_seen": None,
          "source": "admin_import", "status_at": "2024-12-01T11:00:00Z"},
         {"user_id": "user_double", "telegram_id": float(DOUBLE_ID), "username": None, "first_name": "Dbl",
          "role": "member", "status": "left", "joined_at": "2024-12-01T12:00:00Z", "last_seen": None,
          "source": "chat_member_event", "status_at": "2024-12-03T12:00:00Z"},
         {"user_id": "user_coach", "telegram_id": COACH, "username": "coach_k", "first_name": "Kai",
          "role": "coach", "status": "active", "joined_at": "2024-12-01T08:00:00Z", "last_seen": None,
          "source": "admin_import", "status_at": "2024-12-01T08:00:00Z"},
         {"user_id": APP_ONLY_USER, "first_name": "Ayan (signed up in the app)", "role": "member",
          "status": "active", "joined_at": "2024-12-05T07:00:00Z", "source": "app", "city": "Astana"},
     ],
     "sync": {"last_sync": "2024-12-05T00:00:00Z", "bot_is_admin": True, "bot_present": True,
              "total_members_telegram": 5, "total_members_ayda": 4}},
    {"_id": "club_app_trails", "name": "Trail Crew", "telegram_group_id": OTHER_GROUP, "city": "Shymkent",
     "created_by": None, "members": [
         {"user_id": "user_plain", "telegram_id": PLAIN, "username": "plain_runner", "first_name": "Plain",
          "role": "member", "status": "active", "joined_at": "2024-12-01T15:00:00+05:00",
          "last_seen": "2024-12-02T10:00:00", "source": "message_activity", "status_at": "2024-12-01T15:00:00+05:00"}],
     "sync": {"bot_is_admin": False, "bot_present": True}},
    # the app's clubs that have no Telegram group (yet): two, so a plain unique index fails
    {"_id": "club_app_only_1", "name": "Morning Walkers", "city": "Almaty", "members": [
        {"user_id": APP_ONLY_USER, "role": "organizer", "status": "active", "joined_at": "2024-11-01T07:00:00Z"}]},
    {"_id": "club_app_only_2", "name": "Night Owls", "telegram_group_id": None, "members": []},
]

USERS: List[Dict[str, Any]] = [
    {"_id": "user_plain", "telegram_id": PLAIN, "username": "plain_runner", "first_name": "Plain",
     "last_name": None, "language_code": "ru", "created_at": "2024-12-01T10:00:00Z",
     "updated_at": "2024-12-01T10:00:00Z", "phone": "+7 700 000 0000"},
    {"_id": "user_string", "telegram_id": str(STRING_ID), "username": "StringId", "first_name": "Str",
     "created_at": "2024-12-01T11:00:00Z", "updated_at": "2024-12-01T11:00:00Z", "phone": "+7 701"},
    {"_id": "user_double", "telegram_id": float(DOUBLE_ID), "first_name": "Dbl",
     "created_at": "2024-12-01T12:00:00Z", "updated_at": "2024-12-01T12:00:00Z"},
    {"_id": "user_coach", "telegram_id": COACH, "username": "coach_k", "first_name": "Kai",
     "created_at": "2024-12-01T08:00:00Z", "updated_at": "2024-12-01T08:00:00Z"},
    # accounts with no Telegram id: signed up in the app (two, so a plain unique index fails)
    {"_id": APP_ONLY_USER, "first_name": "Ayan", "email": "ayan@example.org", "created_at": "2024-11-01T07:00:00Z"},
    {"_id": "user_app_only_2", "first_name": "Dana", "telegram_id": None, "created_at": "2024-11-02T07:00:00Z"},
]


def fill(db) -> None:
    """The app's documents, exactly as above (deep copies: tests compare against these)."""
    db["clubs"].insert_many(copy.deepcopy(CLUBS))
    db["users"].insert_many(copy.deepcopy(USERS))


def app_fields(db) -> Dict[str, Any]:
    """Everything the app owns, as stored: the app-only clubs, accounts and members whole, and
    the app's own fields on shared documents. What tgsync must never change."""
    out: Dict[str, Any] = {}
    for c in db["clubs"].find({}):
        if c.get("telegram_group_id") is None:
            out[c["_id"]] = c
            continue
        out[c["_id"] + ".city"] = c.get("city")
        out[c["_id"] + ".name"] = c.get("name")
        for m in c.get("members") or []:
            if m.get("telegram_id") is None:
                out[f"{c['_id']}.{m['user_id']}"] = m
            for k in ("city", "pace"):
                if k in m:
                    out[f"{c['_id']}.{m.get('user_id')}.{k}"] = m[k]
    for u in db["users"].find({}):
        if u.get("telegram_id") is None:
            out[u["_id"]] = u
        for k in ("phone", "email"):
            if k in u:
                out[f"{u['_id']}.{k}"] = u[k]
    return out


class AppDatabase:
    """A client holding the app's database `name`; `uri` names it the way an operator would."""

    def __init__(self, client, name: str, uri: str, real: bool = False) -> None:
        self.client, self.name, self.uri, self.real = client, name, uri, real
        self.db = client[name]

    @property
    def store_client(self):
        """The client a store under test gets: mongomock's own (its data lives there), or None on
        a real server (the store connects by URI and closes its own client)."""
        return None if self.real else self.client

    def drop(self) -> None:
        if self.real:
            self.client.drop_database(self.name)


def make_app_database(kind: str = "mongomock") -> AppDatabase:
    if kind == "mongomock":
        import mongomock

        client = mongomock.MongoClient()
        app = AppDatabase(client, "ayda", "mongodb://localhost:27017/ayda")
    else:
        if not MONGO_URI:
            pytest.skip("TGSYNC_TEST_MONGO_URI is not set: no real MongoDB to build the app's database on")
        import pymongo

        name = f"tgsync_app_{uuid.uuid4().hex[:8]}"
        client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=3000)
        base, _, query = MONGO_URI.partition("?")
        base = base.rstrip("/")
        if base.count("/") > 2:  # the URI's own database: replaced by this test's
            base = base.rsplit("/", 1)[0]
        app = AppDatabase(client, name, f"{base}/{name}" + (f"?{query}" if query else ""), real=True)
    fill(app.db)
    return app


def serve_client(monkeypatch, app: AppDatabase) -> None:
    """Every `mongodb://` the CLI opens reaches this one client (mongomock: the same data)."""
    import mongomock
    import pymongo

    if app.real:
        return
    monkeypatch.setattr(pymongo, "MongoClient", lambda *a, **kw: _Shared(app.client))
    add_update = mongomock.collection.BulkOperationBuilder.add_update

    def add_update_without_sort(self, *args, sort=None, **kwargs):
        assert sort is None
        return add_update(self, *args, **kwargs)
    monkeypatch.setattr(mongomock.collection.BulkOperationBuilder, "add_update", add_update_without_sort)


class _Shared:
    """The shared client, with a close that leaves it open for the next command in the test."""

    def __init__(self, client) -> None:
        self._client = client

    def __getitem__(self, name: str):
        return self._client[name]

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def close(self) -> None:
        pass


def _partial_unique_builds_like_mongodb() -> None:
    """mongomock 4.3 checks a new unique index against *every* document, ignoring its
    partialFilterExpression (its inserts do honour it). MongoDB builds a partial index over the
    documents the filter matches only (documented: "Partial Indexes", unique constraint), so the
    app's documents without a number there never collide. Here the build does the same."""
    import mongomock
    from mongomock import helpers
    from pymongo.errors import DuplicateKeyError

    Collection = mongomock.collection.Collection
    if getattr(Collection.create_index, "_partial_builds", False):
        return
    original = Collection.create_index

    def create_index(self, key_or_list, cache_for=300, session=None, **kwargs):
        pfe = kwargs.get("partialFilterExpression")
        if not (pfe and kwargs.get("unique")):
            return original(self, key_or_list, cache_for, session, **kwargs)
        keys = [k for k, _ in helpers.create_index_list(key_or_list)]
        seen = set()
        for doc in self.find(pfe):
            value = tuple(repr(helpers.get_value_by_dot(doc, k)) for k in keys)
            if value in seen:
                raise DuplicateKeyError("E11000 duplicate key error collection: index build", 11000)
            seen.add(value)
        name = original(self, key_or_list, cache_for, session,
                        **{k: v for k, v in kwargs.items() if k != "unique"})
        self._store.indexes[name]["unique"] = True
        return name
    create_index._partial_builds = True  # type: ignore[attr-defined]
    Collection.create_index = create_index


_partial_unique_builds_like_mongodb()
