"""The MongoDB `requests` collection (tgsync's own): requests the app writes, join requests
tgsync answers. The app may write ids as strings and dates as ISO text and leave `state` out;
every read goes through `read_request`. A claim is one `update_one` whose filter is the state it
moves from, so of two serves exactly one matches."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence

from tgsync_cli.core.requests import APPLYING, DONE, PENDING, WAITING, read_request
from tgsync_cli.stores.common import new_id
from tgsync_cli.stores.mongo_db import MongoDb

_INTERNAL = ("problem",)


def _same_person(tid: int) -> Dict[str, Any]:
    """A telegram_id stored as int, int64, double or text is the same person."""
    return {"$in": [tid, float(tid), str(tid)]}


def _pending_filter() -> Dict[str, Any]:
    return {"$or": [{"state": PENDING}, {"state": None}, {"state": {"$exists": False}}]}


class MongoRequests:
    def __init__(self, db: MongoDb) -> None:
        self.db = db
        self.coll = db.requests

    def _clean(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        return {k: v for k, v in doc.items() if k not in _INTERNAL}

    def add_request(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        doc = self._clean({**doc, "_id": doc.get("_id") or new_id("req")})
        self.db.call("add_request", self.coll.insert_one, doc)
        return read_request(doc)

    def requests_of(self, club_id: Optional[str] = None, states: Optional[Sequence[str]] = None,
                    telegram_id: Optional[int] = None, since: Optional[datetime] = None,
                    limit: int = 1000) -> List[Dict[str, Any]]:
        flt: Dict[str, Any] = {}
        if club_id is not None:
            flt["club_id"] = club_id
        if telegram_id is not None:
            flt["telegram_id"] = _same_person(telegram_id)
        if states is not None:
            ors: List[Dict[str, Any]] = [{"state": {"$in": list(states)}}]
            if PENDING in states:
                ors += [{"state": None}, {"state": {"$exists": False}}]
            flt["$or"] = ors
        rows = self.db.call("requests_of", lambda: list(self.coll.find(flt).sort("_id", 1).limit(limit)))
        out = [read_request(d) for d in rows]
        if since is not None:
            out = [d for d in out if d["at"] is not None and d["at"] >= since]
        return sorted(out, key=lambda d: (d["at"] or datetime.min, str(d["_id"])))

    def claim_request(self, req_id: Any, token: str, now: datetime,
                      stale_before: datetime) -> Optional[Dict[str, Any]]:
        flt = {"_id": req_id, "$or": [*_pending_filter()["$or"],
                                      {"state": APPLYING, "claimed_at": {"$lt": stale_before}}]}
        upd = {"$set": {"state": APPLYING, "claim": token, "claimed_at": now}, "$inc": {"attempts": 1}}
        from pymongo import ReturnDocument

        doc = self.db.call("claim_request", self.coll.find_one_and_update, flt, upd,
                           return_document=ReturnDocument.AFTER)
        return read_request(doc) if doc is not None else None

    def finish_request(self, req_id: Any, token: Optional[str], fields: Dict[str, Any]) -> bool:
        flt: Dict[str, Any] = {"_id": req_id}
        if token is not None:
            flt.update({"state": APPLYING, "claim": token})
        upd = {"$set": {"state": DONE, **self._clean(fields)}}
        return self.db.call("finish_request", self.coll.update_one, flt, upd).matched_count > 0

    def open_join_request(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        flt = {"club_id": doc["club_id"], "telegram_id": doc["telegram_id"], "state": WAITING}
        body = self._clean({k: v for k, v in doc.items() if k not in ("state", "_id")})
        from pymongo import ReturnDocument

        body.pop("club_id", None)
        body.pop("telegram_id", None)
        found = self.db.call("open_join_request", self.coll.find_one_and_update, flt,
                             {"$setOnInsert": {**body, "_id": new_id("req")}}, upsert=True,
                             return_document=ReturnDocument.AFTER)
        return read_request(found or {**doc, "state": WAITING})

    def close_join_requests(self, club_id: str, telegram_id: int, fields: Dict[str, Any]) -> int:
        flt = {"club_id": club_id, "telegram_id": _same_person(telegram_id), "state": WAITING}
        upd = {"$set": {**self._clean(fields), "state": DONE}}
        return self.db.call("close_join_requests", self.coll.update_many, flt, upd).modified_count
