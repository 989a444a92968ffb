"""Whole-store export and import for the MongoDB backend (`tgsync store copy`), idempotent:
clubs by `_id` (or their telegram_group_id), accounts by telegram_id, departures by (club,
telegram_id), log entries by their whole content."""

from __future__ import annotations

from typing import Dict, List

from tgsync_cli.stores.mongo_insights import merge_log
from tgsync_cli.stores.mongo import INTERNAL_CLUB_KEYS
from tgsync_cli.stores.sqlite_copy import log_key


def export_all(store) -> Dict[str, List[dict]]:
    def run():
        clubs = [store._render(d) for d in store.clubs.find({}).sort("telegram_group_id", 1)]
        users = list(store.users.find({}).sort("telegram_id", 1))
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
        for u in docs.get("users", []):
            fields = {k: v for k, v in u.items() if k != "_id"}
            store.users.update_one({"telegram_id": u["telegram_id"]},
                                   {"$set": fields, "$setOnInsert": {"_id": u["_id"]}}, upsert=True)
            n["users"] += 1
        for c in docs.get("clubs", []):
            existing = store.clubs.find_one({"$or": [{"_id": c["_id"]}, {"telegram_group_id": c["telegram_group_id"]}]},
                                            {"_id": 1, "version": 1, "departed_ids": 1, "log_pending": 1})
            doc = {k: v for k, v in c.items() if k != "_id" and k not in INTERNAL_CLUB_KEYS}
            for k in ("departed_ids", "log_pending"):  # this store's own notes and outbox stay
                if (existing or {}).get(k):
                    doc[k] = existing[k]
            doc["members"] = [dict(m) for m in c.get("members") or []]
            for m in doc["members"]:
                m.setdefault("hard_at", m.get("status_at"))
            doc["version"] = (existing or {}).get("version", 0) + 1
            store.clubs.replace_one({"_id": existing["_id"] if existing else c["_id"]}, doc, upsert=True)
            n["clubs"] += 1
            n["members"] += len(doc["members"])
        have = {log_key(e) for e in store.log.find({}, {"_id": 0})}
        have |= {log_key(e) for d in store.clubs.find({"log_pending.0": {"$exists": True}}, {"log_pending": 1})
                 for e in d.get("log_pending") or []}
        fresh = []
        for e in docs.get("membership_log", []):
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
