"""What `history`, `member` and `stats` read from MongoDB: the membership log, writers per ISO
week (`activity`, kept by the last_seen flush), reconcile figures (`reconciles`), and one person's
memberships. Collections beside the seed's; the Ayda Run app never reads them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple, cast

from tgsync_cli.core.documents import LogEntry, MembershipOf, ReconcileRecord
from tgsync_cli.core.insights import activity_rows
from tgsync_cli.stores.mongo_db import MongoDb
from tgsync_cli.stores.mongo_shapes import as_tid, read_log_entry, tid_match


def merge_log(moved: List[dict], pending: List[dict], since: Optional[datetime] = None) -> List[dict]:
    """The collection's entries and the outbox's not yet moved, once each, in write order."""
    have = {r["_id"] for r in moved}
    rows = [r for r in (read_log_entry(e) for e in moved + [e for e in pending if e["_id"] not in have])
            if r is not None and (since is None or r["at"] >= since)]
    # an _id the app chose (a string) sorts beside ObjectIds, whose hex sorts as they do
    return sorted(rows, key=lambda r: (type(r["_id"]).__name__ != "ObjectId", str(r["_id"])))


class MongoInsights:
    """A part MongoStore holds: given the database."""

    def __init__(self, db: MongoDb) -> None:
        self.db = db

    def pending_log(self, flt: Optional[dict] = None) -> List[dict]:
        """Outbox entries not moved yet (of every process), for readers: one round trip."""
        docs = self.db.call("pending_log", lambda: list(self.db.clubs.find(
            {"log_pending.0": {"$exists": True}}, {"log_pending": 1})))
        rows = [e for d in docs for e in d.get("log_pending") or []]
        return [e for e in rows if all(e.get(k) == v for k, v in (flt or {}).items())]

    def ensure_indexes(self) -> None:
        self.db.activity.create_index([("club_id", 1), ("week", 1), ("telegram_id", 1)], unique=True)
        self.db.activity.create_index("telegram_id")
        self.db.reconciles.create_index([("club_id", 1), ("at", 1)])

    def record_activity(self, seen: Dict[Tuple[str, int], datetime],
                        first_seen: Optional[Dict[Tuple[str, int], datetime]]) -> None:
        """Part of the flush: one more bulk of upserts (ids per week, nothing more)."""
        ops = [({"club_id": c, "week": w, "telegram_id": t}, {"$setOnInsert": {"club_id": c}}, True)
               for c, w, t in activity_rows(seen, first_seen)]
        self.db.bulk("flush_activity", self.db.activity, ops)

    def membership_log(self, club_id: Optional[str] = None, telegram_id: Optional[int] = None,
                       since: Optional[datetime] = None) -> List[LogEntry]:
        flt: Dict[str, Any] = {}
        if club_id is not None:
            flt["club_id"] = club_id
        if telegram_id is not None:  # the app may hold the id as a string
            flt["telegram_id"] = tid_match(telegram_id)
        rows = self.db.call("membership_log", lambda: list(self.db.log.find(flt).sort("_id", 1)))
        pending = self.pending_log({"club_id": club_id} if club_id is not None else None)
        if telegram_id is not None:
            pending = [e for e in pending if as_tid(e.get("telegram_id")) == telegram_id]
        rows = merge_log(rows, pending, since)  # `since` compared as times: the app may write strings
        return [{"invited_by": None, **{k: v for k, v in r.items() if k != "_id"}} for r in rows]

    def writers_by_week(self, club_id: str) -> Dict[str, int]:
        rows = self.db.call("writers_by_week", lambda: list(self.db.activity.find({"club_id": club_id}, {"week": 1})))
        return dict(Counter(r["week"] for r in rows))

    def record_reconcile(self, club_id: str, at: datetime, telegram: Optional[int], active: int,
                         drift: Optional[int]) -> None:
        self.db.call("record_reconcile", self.db.reconciles.insert_one,
                   {"club_id": club_id, "at": at, "total_members_telegram": telegram, "active": active,
                    "drift": drift})

    def reconcile_history(self, club_id: str) -> List[ReconcileRecord]:
        rows = self.db.call("reconcile_history", lambda: list(
            self.db.reconciles.find({"club_id": club_id}, {"_id": 0}).sort([("at", 1), ("_id", 1)])))
        return rows

    def memberships_of(self, tid: int) -> List[MembershipOf]:
        from tgsync_cli.stores.mongo_shapes import as_tid, read_member, tid_match

        docs = self.db.call("memberships_of", lambda: list(self.db.clubs.find(
            {"members.telegram_id": tid_match(tid)},
            {"name": 1, "telegram_group_id": 1, "members": {"$elemMatch": {"telegram_id": tid_match(tid)}}})))
        out: List[MembershipOf] = []
        for d in docs:
            for m in d.get("members") or []:
                out.append(cast(MembershipOf, {**read_member(m), "club_id": d["_id"], "club_name": d.get("name"),
                                               "telegram_group_id": as_tid(d.get("telegram_group_id"))}))
        return out
