"""Whole-store export and import for the MongoDB backend (`tgsync store copy`), idempotent:
clubs by `_id` (or their telegram_group_id), accounts by telegram_id, departures by (club,
telegram_id), log entries by their whole content."""

from __future__ import annotations

from datetime import datetime
from typing import Dict, List

from tgsync_cli.stores.mongo import INTERNAL_CLUB_KEYS

from tgsync_cli.stores.copy_merge import OWN, merge_member, merge_sync
from tgsync_cli.stores.mongo_insights import merge_log
from tgsync_cli.stores.mongo_shapes import (
    as_tid,
    member_entries,
    read_member,
    read_sync,
    read_user,
    tid_match,
    time_cmp,
    written,
)
from tgsync_cli.stores.sqlite_copy import log_key

ACCOUNT_KEYS = ("username", "first_name", "last_name", "language_code", "updated_at", "dm_blocked")


def export_all(store) -> Dict[str, List[dict]]:
    def run():
        # tgsync's documents only: clubs with a Telegram group, members and accounts with an id
        clubs = [c for c in (store._render(d) for d in store.clubs.find({}).sort("telegram_group_id", 1))
                 if c.get("telegram_group_id") is not None]
        for c in clubs:
            c["members"] = [m for m in c["members"] if m.get("telegram_id") is not None]
        users = [u for u in (read_user(d) for d in store.users.find({}).sort("telegram_id", 1))
                 if u is not None and u.get("telegram_id") is not None]
        pending = [e for d in store.clubs.find({"log_pending.0": {"$exists": True}}, {"log_pending": 1})
                   for e in d.get("log_pending") or []]
        log = [{k: v for k, v in e.items() if k != "_id"}
               for e in merge_log(list(store.log.find({}).sort("_id", 1)), pending)]
        deps = [{k: v for k, v in d.items() if k != "_id"}
                for d in store.departures.find({}).sort([("club_id", 1), ("telegram_id", 1)])]
        activity = list(store.activity.find({}, {"_id": 0}).sort([("club_id", 1), ("week", 1), ("telegram_id", 1)]))
        recs = list(store.reconciles.find({}, {"_id": 0}).sort("_id", 1))
        return {"clubs": clubs, "users": users, "membership_log": log, "departures": deps,
                "activity": activity, "reconciles": recs}
    return store._call("export", run)


def import_all(store, docs: Dict[str, List[dict]]) -> Dict[str, int]:
    n = {"clubs": 0, "members": 0, "users": 0, "membership_log": 0, "departures": 0, "activity": 0,
         "reconciles": 0}

    def run():
        accounts = {}
        for u in docs.get("users", []):
            accounts[u["telegram_id"]] = merge_account(store, u)
            n["users"] += 1
        for c in docs.get("clubs", []):
            n["members"] += merge_club(store, c, accounts)
            n["clubs"] += 1
        entries = docs.get("membership_log", [])
        have = set()
        if entries:  # only what this chunk could repeat: its clubs, its span of time (indexed)
            query = _span(entries)
            have = {log_key(e) for e in store.log.find(query, {"_id": 0})}
            have |= {log_key(e) for d in store.clubs.find({"_id": {"$in": query["club_id"]["$in"]},
                                                          "log_pending.0": {"$exists": True}},
                                                         {"log_pending": 1})
                     for e in d.get("log_pending") or []}
        fresh = []
        for e in entries:
            if log_key(e) not in have:
                have.add(log_key(e))
                fresh.append(dict(e))
        if fresh:
            store.log.insert_many(fresh)
        n["membership_log"] = len(fresh)
        for d in docs.get("departures", []):
            store.clubs.update_one({"_id": d["club_id"]}, {"$addToSet": {"departed_ids": d["telegram_id"]}})
            store.departures.update_one({"club_id": d["club_id"], "telegram_id": d["telegram_id"]},
                                        {"$set": {"status": d.get("status"), "at": d.get("at")}}, upsert=True)
            n["departures"] += 1
        for a in docs.get("activity", []):
            key = {"club_id": a["club_id"], "week": a["week"], "telegram_id": a["telegram_id"]}
            store.activity.update_one(key, {"$setOnInsert": key}, upsert=True)
            n["activity"] += 1
        for r in docs.get("reconciles", []):
            doc = {k: v for k, v in r.items() if k != "club_id"}
            store.reconciles.update_one({"club_id": r["club_id"], "at": r.get("at")}, {"$setOnInsert": doc},
                                        upsert=True)  # copied twice: still one entry per reconcile
            n["reconciles"] += 1
        store.members.clear_hints()  # members arrived behind this process's back
        return n
    return store._call("import", run)


def merge_account(store, u: dict) -> str:
    """The account by telegram id in any stored form; tgsync's fields of the newer side (by
    updated_at), the app's fields and the stored id form untouched. Returns the target's _id."""
    form = store.forms["users"]
    cur = read_user(store.users.find_one({"telegram_id": tid_match(u["telegram_id"])}))
    if cur is None:
        doc = {k: (form.out(v) if k in ("created_at", "updated_at") else v) for k, v in u.items()}
        store.users.insert_one(doc)
        return doc["_id"]
    newer = cur.get("updated_at") is None or (u.get("updated_at") is not None and u["updated_at"] >= cur["updated_at"])
    sets = {k: form.out(u.get(k)) if k == "updated_at" else u.get(k) for k in ACCOUNT_KEYS
            if k in u and (newer or cur.get(k) is None) and cur.get(k) != u.get(k)}
    if sets:
        store.users.update_one({"_id": cur["_id"]}, {"$set": sets})
    return cur["_id"]


def merge_club(store, c: dict, accounts: Dict[int, str]) -> int:
    """A club the target lacks is inserted whole; one it has (same _id or telegram_group_id, in
    any stored form) is merged member by member: the app's fields, name and members stay."""
    form = store.forms["clubs"]
    members = []
    for m in c.get("members") or []:
        m = dict(m)
        m.setdefault("hard_at", m.get("status_at"))  # a seed document: its status_at is the last event's
        if m.get("telegram_id") in accounts:
            m["user_id"] = accounts[m["telegram_id"]]
        members.append(m)
    existing = store.clubs.find_one({"$or": [{"_id": c["_id"]},
                                             {"telegram_group_id": tid_match(c["telegram_group_id"])}]})
    if existing is None:
        doc = {k: v for k, v in c.items() if k not in INTERNAL_CLUB_KEYS}
        doc["sync"] = {k: form.out(v) for k, v in (c.get("sync") or {}).items()}
        doc["members"] = [written(m, form) for m in members]
        doc["version"] = 1
        store.clubs.insert_one(doc)
        return len(members)
    cid = existing["_id"]
    have = {as_tid(m.get("telegram_id")): m for m in member_entries(existing)}
    sets: Dict[str, object] = {f"sync.{k}": form.out(v)
                               for k, v in merge_sync(read_sync(existing.get("sync")), c.get("sync") or {}).items()}
    if c.get("username") and not existing.get("username"):
        sets["username"] = c["username"]
    if existing.get("created_by") is None and c.get("created_by") is not None:
        sets["created_by"] = c["created_by"]
    upd: Dict[str, object] = {"$inc": {"version": 1}}
    if sets:
        upd["$set"] = sets
    if c.get("previous_group_ids"):
        upd["$addToSet"] = {"previous_group_ids": {"$each": list(c["previous_group_ids"])}}
    store.clubs.update_one({"_id": cid}, upd)
    for m in members:
        raw = have.get(m["telegram_id"])
        if raw is None:
            store.clubs.update_one({"_id": cid, "members.telegram_id": {"$nin": tid_match(m["telegram_id"])["$in"]}},
                                   {"$push": {"members": written({k: v for k, v in m.items()
                                                                  if k in OWN or k == "telegram_id"}, form)}})
            continue
        merge_into(store, cid, raw, m)
    return len(members)


def merge_into(store, cid: str, raw: dict, m: dict, tries: int = 3) -> None:
    """One member merged positionally, tgsync's fields only (the app's on the entry stay), and
    guarded on the values it decided from: when the app changed one of them meanwhile, the
    entry is read and decided again; when the app removed the member, nothing is written."""
    form = store.forms["clubs"]
    for _ in range(tries):
        change = merge_member(read_member(raw), m)
        if not change:
            return
        guard = {"telegram_id": raw.get("telegram_id"), **{k: raw.get(k) for k in change}}
        r = store.clubs.update_one({"_id": cid, "members": {"$elemMatch": guard}},
                                   {"$set": {f"members.$.{k}": v for k, v in written(change, form).items()}})
        if r.matched_count:
            return
        doc = store.clubs.find_one({"_id": cid, "members.telegram_id": tid_match(m["telegram_id"])})
        found = [e for e in member_entries(doc) if as_tid(e.get("telegram_id")) == m["telegram_id"]]
        if not found:
            return
        raw = found[0]


def _span(entries: List[dict]) -> dict:
    """The target's log entries a chunk could repeat: same clubs, within the chunk's times (an
    indexed range), so importing a log of any size reads each target entry about once."""
    query: dict = {"club_id": {"$in": sorted({e["club_id"] for e in entries})}}
    ats = [a for a in (e.get("at") for e in entries) if isinstance(a, datetime)]
    if ats and len(ats) == len(entries):  # either stored form of a time
        query["$and"] = [{"$or": time_cmp("at", "$gte", min(ats))},
                         {"$or": time_cmp("at", "$lte", max(ats))}]
    return query
