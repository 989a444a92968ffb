"""Every store backend the contract suite runs against, and helpers shared by its tests."""

from __future__ import annotations

import os
import uuid
from typing import Any, Dict, Iterable, Optional

import pytest

from tgsync_cli.core.events import Person
from tgsync_cli.core.evidence import decide
from tgsync_cli.core.store import Observation
from tgsync_cli.stores import open_store

MONGO_URI = os.environ.get("TGSYNC_TEST_MONGO_URI")
NO_MONGO = "TGSYNC_TEST_MONGO_URI is not set: the contract suite did not run against a real MongoDB"
# mongomock-app / mongodb-app: the same contract inside a database the Ayda Run app already
# fills (tests/app_db.py: string dates and ids, app-only clubs, accounts and members)
BACKENDS = ["sqlite-file", "sqlite-memory", "mongomock", "mongodb", "mongomock-app", "mongodb-app"]
PROCESS_BACKENDS = ["sqlite-file", "mongodb"]  # shared between real processes


def open_backend(kind: str, tmp_path, name: str = "s"):
    """(store, uri or None). The URI, when there is one, lets another process open the same store."""
    if kind == "sqlite-file":
        uri = f"file:{tmp_path}/{name}"
        return open_store(uri), uri
    if kind == "sqlite-memory":
        return open_store("memory:"), None
    if kind == "mongomock":
        import mongomock

        from tgsync_cli.stores.mongo import open_mongo

        return open_mongo("mongodb://mongomock", "contract", client=mongomock.MongoClient()), None
    if kind in ("mongomock-app", "mongodb-app"):
        from tests.app_db import make_app_database
        from tgsync_cli.stores.mongo import open_mongo
        from tgsync_cli.stores.mongo_indexes import ensure

        app = make_app_database("mongomock" if kind == "mongomock-app" else "real")
        ensure(app.db)  # what `tgsync store init` does, once
        store = open_mongo(app.uri, client=app.store_client)
        if app.real:
            store._drop_after = app.name  # type: ignore[attr-defined]
            return store, f"{app.uri}#{app.name}"
        return store, None
    if kind == "mongodb":
        if not MONGO_URI:
            pytest.skip(NO_MONGO)
        db = f"tgsync_contract_{uuid.uuid4().hex[:8]}"
        store = open_store(MONGO_URI, db)
        store._drop_after = db  # type: ignore[attr-defined]
        return store, f"{MONGO_URI}#{db}"
    raise ValueError(kind)


def reopen(uri: str):
    if "#" in uri:
        base, db = uri.split("#", 1)
        return open_store(base, db)
    return open_store(uri)


def close_backend(store) -> None:
    db = getattr(store, "_drop_after", None)
    if db is not None:
        store._client.drop_database(db)
    store.close()


def person(tid: int) -> Person:
    return Person(tid, first_name=f"Runner {tid}", username=f"runner{tid}")


def join(tid, at, role="member", source="chat_member_event", **kw):
    return Observation(person(tid), "active", role, at, source, **kw)


def leave(tid, at, status="left", source="chat_member_event"):
    return Observation(person(tid), status, "member", at, source)


def message(tid, at):
    return Observation(person(tid), "active", None, at, "message_activity", strictly_newer=True, last_seen=at)


def comparable(store, club_id=None):
    """The store as a user sees it, minus generated ids and last_seen: members by telegram id,
    accounts by telegram id, departures of people with no membership."""
    docs = store.export()
    clubs = {}
    for c in docs["clubs"]:
        if club_id is not None and c["_id"] != club_id:
            continue
        clubs[c["telegram_group_id"]] = sorted(
            ({k: v for k, v in m.items() if k not in ("user_id", "last_seen")} for m in c["members"]),
            key=lambda m: m["telegram_id"])
    members = {(c["_id"], m["telegram_id"]) for c in docs["clubs"] for m in c["members"]}
    deps = sorted((d["telegram_id"], d["status"], d["at"]) for d in docs["departures"]
                  if (d["club_id"], d["telegram_id"]) not in members)
    users = sorted(u["telegram_id"] for u in docs["users"])
    return {"clubs": clubs, "departures": deps, "users": users}


# -- work for other processes (spawned: these must be importable) -----------------------------------
def apply_in_process(uri: str, club_id: str, events: list, barrier) -> int:
    """Apply (how, observation) pairs to the store at `uri`, starting with the others."""
    store = reopen(uri)
    barrier.wait()
    for how, ob in events:
        if how == "one":
            store.observe(club_id, ob)
        else:
            store.observe_many(club_id, [ob])
    store.close()
    return len(events)


def forget_in_process(uri: str, tid: int, times: int, barrier) -> int:
    import time

    store = reopen(uri)
    barrier.wait()
    for _ in range(times):
        store.forget(tid)
        time.sleep(0.002)
    store.close()
    return times


def history(people, seed: int = 3):
    """Member events at distinct times per person, at most one message each, some listings."""
    import random

    from datetime import datetime, timedelta

    rng = random.Random(seed)
    t0 = datetime(2025, 5, 1, 8, 0)
    events = []
    for tid in people:
        for minute in rng.sample(range(60), rng.randint(1, 4)):
            at = t0 + timedelta(minutes=minute)
            kind = rng.choice(["join", "promote", "leave", "kick", "listed"])
            if kind == "join":
                events.append(("one", join(tid, at)))
            elif kind == "promote":
                events.append(("one", join(tid, at, role="organizer")))
            elif kind == "listed":
                events.append(("many", join(tid, at, source="member_import")))
            else:
                events.append(("one", leave(tid, at, status="left" if kind == "leave" else "kicked")))
        if rng.random() < 0.6:
            events.append(("one", message(tid, t0 + timedelta(minutes=rng.randrange(61)))))
    rng.shuffle(events)
    return events


def fold_rule(steps: Iterable[Observation]) -> Optional[Dict[str, Any]]:
    """The pure rule over the steps, with the departure note a store would keep, in memory."""
    current: Optional[Dict[str, Any]] = None
    departure: Optional[Dict[str, Any]] = None
    for obs in steps:
        d = decide("club", current, departure, obs)
        if d.departure is not None and (departure is None or departure["at"] <= d.departure["at"]):
            departure = d.departure
        if d.member is not None:
            current = d.member
        if d.clear_departure:
            departure = None
    return current
