"""The embedded store's `requests` table: the app's requests and tgsync's join requests.

The columns a query or a guard needs (club, person, state, time, claim) are columns; the rest
of the document is kept as JSON beside them. A claim is one guarded UPDATE inside a write
transaction, so two serves can never both take the same request."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence

from tgsync_cli.core.requests import APPLYING, DONE, PENDING, WAITING, read_request
from tgsync_cli.stores.common import new_id
from tgsync_cli.stores.sqlite_members import Tx
from tgsync_cli.stores.sqlite_schema import dt_in, dt_out

_COLS = "id, club_id, telegram_id, action, state, at, claim, claimed_at, doc"
_COLUMNS = ("club_id", "telegram_id", "action", "state", "at", "claim", "claimed_at")


def _json(v: Any) -> Any:
    return {"$dt": dt_in(v)} if isinstance(v, datetime) else v


def _unjson(v: Any) -> Any:
    return dt_out(v["$dt"]) if isinstance(v, dict) and "$dt" in v else v


def _row(r: Sequence[Any]) -> Dict[str, Any]:
    rid, club_id, tid, action, state, at, claim, claimed_at, doc = r
    out = {k: _unjson(v) for k, v in json.loads(doc or "{}").items()}
    out.update({"_id": rid, "club_id": club_id, "telegram_id": tid, "action": action, "state": state,
                "at": dt_out(at), "claim": claim, "claimed_at": dt_out(claimed_at)})
    return read_request(out)


def _split(doc: Dict[str, Any]) -> tuple:
    rest = {k: _json(v) for k, v in doc.items() if k not in _COLUMNS and k not in ("_id", "problem")}
    return (doc.get("club_id"), doc.get("telegram_id"), doc.get("action"), doc.get("state") or PENDING,
            dt_in(doc.get("at")), doc.get("claim"), dt_in(doc.get("claimed_at")), json.dumps(rest))


class SqliteRequests:
    """Given the store's transactions: one transaction per call."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def add_request(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        rid = doc.get("_id") or new_id("req")
        with self._tx("add_request") as cur:
            cur.execute(f"INSERT INTO requests ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (rid, *_split(doc)))
            return _row(cur.execute(f"SELECT {_COLS} FROM requests WHERE id = ?", (rid,)).fetchone())

    def requests_of(self, club_id: Optional[str] = None, states: Optional[Sequence[str]] = None,
                    telegram_id: Optional[int] = None, since: Optional[datetime] = None,
                    limit: int = 1000) -> List[Dict[str, Any]]:
        where: List[str] = []
        args: List[Any] = []
        if club_id is not None:
            where.append("club_id = ?")
            args.append(club_id)
        if telegram_id is not None:
            where.append("telegram_id = ?")
            args.append(telegram_id)
        if states is not None:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(states)
        if since is not None:
            where.append("at >= ?")
            args.append(dt_in(since))
        sql = (f"SELECT {_COLS} FROM requests" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY seq LIMIT ?")
        with self._tx("requests_of", write=False) as cur:
            return [_row(r) for r in cur.execute(sql, (*args, limit)).fetchall()]

    def claim_request(self, req_id: str, token: str, now: datetime,
                      stale_before: datetime) -> Optional[Dict[str, Any]]:
        """pending → applying with our token; or a claim older than `stale_before` taken over.
        None when another serve holds it or it is finished."""
        with self._tx("claim_request") as cur:
            row = cur.execute(f"SELECT {_COLS} FROM requests WHERE id = ?", (req_id,)).fetchone()
            if row is None:
                return None
            doc = _row(row)
            stale = doc["state"] == APPLYING and (doc["claimed_at"] is None
                                                  or doc["claimed_at"] < stale_before)
            if doc["state"] != PENDING and not stale:
                return None
            doc.update({"state": APPLYING, "claim": token, "claimed_at": now,
                        "attempts": doc["attempts"] + 1})
            cur.execute("UPDATE requests SET state = ?, claim = ?, claimed_at = ?, doc = ? WHERE id = ?",
                        (APPLYING, token, dt_in(now), _split(doc)[-1], req_id))
            return doc

    def finish_request(self, req_id: str, token: Optional[str], fields: Dict[str, Any]) -> bool:
        """Record the outcome; with a token, only while that claim still holds."""
        with self._tx("finish_request") as cur:
            row = cur.execute(f"SELECT {_COLS} FROM requests WHERE id = ?", (req_id,)).fetchone()
            if row is None:
                return False
            doc = _row(row)
            if token is not None and (doc["state"] != APPLYING or doc.get("claim") != token):
                return False
            doc.update(fields)
            doc["state"] = fields.get("state", DONE)
            cur.execute("UPDATE requests SET club_id = ?, telegram_id = ?, action = ?, state = ?, at = ?,"
                        " claim = ?, claimed_at = ?, doc = ? WHERE id = ?", (*_split(doc), req_id))
            return True

    def open_join_request(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        """The person's waiting join request in the club, written once however often they ask."""
        with self._tx("open_join_request") as cur:
            row = cur.execute(f"SELECT {_COLS} FROM requests WHERE club_id = ? AND telegram_id = ?"
                              " AND state = ? ORDER BY seq DESC LIMIT 1",
                              (doc["club_id"], doc["telegram_id"], WAITING)).fetchone()
            if row is not None:
                return _row(row)
            rid = new_id("req")
            cur.execute(f"INSERT INTO requests ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (rid, *_split({**doc, "state": WAITING})))
            return _row(cur.execute(f"SELECT {_COLS} FROM requests WHERE id = ?", (rid,)).fetchone())

    def close_join_requests(self, club_id: str, telegram_id: int, fields: Dict[str, Any]) -> int:
        """Every waiting join request of the person in the club → done with `fields`."""
        with self._tx("close_join_requests") as cur:
            rows = cur.execute(f"SELECT {_COLS} FROM requests WHERE club_id = ? AND telegram_id = ?"
                               " AND state = ?", (club_id, telegram_id, WAITING)).fetchall()
            for r in rows:
                doc = _row(r)
                doc.update({**fields, "state": DONE})
                cur.execute("UPDATE requests SET state = ?, doc = ? WHERE id = ?",
                            (DONE, _split(doc)[-1], doc["_id"]))
            return len(rows)
