"""MongoDB member writes: read the member, decide (core.store.decide), write guarded on what was
read, retry when another writer got there first; and the last_seen flush."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tgsync_cli.core.errors import StoreUnavailable
from tgsync_cli.core.events import Person
from tgsync_cli.core.store import Observation, Outcome, decide
from tgsync_cli.stores.common import member_doc



RETRIES = 8
_CAS_KEYS = ("status", "status_at", "role", "role_at", "joined_at", "source", "hard_at", "proof_at",
             "last_seen", "invited_by", "invite_link")

class MongoMembers:
    """Part of MongoStore (mongo.py): relies on its collections, _call and _bulk."""

    # -- members -----------------------------------------------------------------------------------
    def _raw_member(self, club_id: str, tid: int) -> Tuple[bool, Optional[dict]]:
        doc = self._call("member", self.clubs.find_one, {"_id": club_id},
                         {"members": {"$elemMatch": {"telegram_id": tid}}})
        if doc is None:
            return False, None
        ms = doc.get("members") or []
        return True, (ms[0] if ms else None)

    def member(self, club_id: str, tid: int) -> Optional[dict]:
        _, m = self._raw_member(club_id, tid)
        return member_doc(m) if m else None

    @staticmethod
    def _cas(club_id: str, tid: int, current: dict, new: dict, changed: bool) -> Tuple[dict, dict]:
        elem = {"telegram_id": tid}
        for k in _CAS_KEYS:
            elem[k] = current.get(k)
        sets = {f"members.$.{k}": new.get(k) for k in _CAS_KEYS if new.get(k) != current.get(k)
                or k not in current}
        upd: Dict[str, Any] = {"$set": sets}
        if changed:
            upd["$inc"] = {"version": 1}
        return {"_id": club_id, "members": {"$elemMatch": elem}}, upd

    def observe(self, club_id: str, obs: Observation) -> Outcome:
        tid = obs.person.id
        for _ in range(RETRIES):
            exists, current = self._raw_member(club_id, tid)
            if not exists:
                return Outcome(tid)
            dep = None
            if current is None:
                dep = self._call("departure", self.departures.find_one, {"club_id": club_id, "telegram_id": tid})
            d = decide(club_id, current, dep, obs)
            if d.departure is not None:
                self._insert_departure(d.departure, exists=dep is not None)
            if d.member is not None:
                if current is None:
                    m = dict(d.member)
                    m["user_id"] = self._upsert_account(obs.person, obs.at, obs.keep_names)
                    r = self._call("observe", self.clubs.update_one,
                                   {"_id": club_id, "members.telegram_id": {"$ne": tid}},
                                   {"$push": {"members": m}, "$inc": {"version": 1}})
                else:
                    r = self._call("observe", self.clubs.update_one,
                                   *self._cas(club_id, tid, current, d.member, d.outcome.changed))
                if not r.matched_count:
                    continue  # another writer changed this member first: decide again
            if d.clear_departure:
                self._call("clear_departure", self.departures.delete_one, {"club_id": club_id, "telegram_id": tid})
            if d.log is not None:
                self._call("log", self.log.insert_one, dict(d.log))
            return d.outcome
        raise StoreUnavailable(f"{self.uri_label}: member {tid} kept changing under this write")

    def _insert_departure(self, dep: dict, exists: bool = False) -> None:
        from pymongo.errors import DuplicateKeyError

        if not exists:
            try:
                self._call("record_departure", self.departures.insert_one, dict(dep))
                return
            except DuplicateKeyError:  # a racing leave noted first: keep the newer of the two
                pass
        self._call("record_departure", self.departures.update_one,
                   {"club_id": dep["club_id"], "telegram_id": dep["telegram_id"], "at": {"$lte": dep["at"]}},
                   {"$set": {"status": dep["status"], "at": dep["at"]}})

    def observe_many(self, club_id: str, observations: Sequence[Observation],
                     complete_at: Optional[datetime] = None, complete_source: str = "member_import"
                     ) -> List[Outcome]:
        """A listing: observations of members already in the club are decided on one read and
        written in one bulk (each op compare-and-set); new ones go through `observe`."""
        doc = self._call("observe_many", self.clubs.find_one, {"_id": club_id}, {"members": 1})
        if doc is None:
            return [Outcome(o.person.id) for o in observations]
        known = {m["telegram_id"]: m for m in doc.get("members") or []}
        obs = list(observations)
        if complete_at is not None:
            listed = {o.person.id for o in obs}
            obs += [Observation(Person(t), "left", "member", complete_at, complete_source, create=False)
                    for t, m in known.items() if t not in listed and m.get("status") == "active"]
        outs: List[Optional[Outcome]] = [None] * len(obs)
        ops, logs, where = [], [], []
        for i, o in enumerate(obs):
            cur = known.get(o.person.id)
            if cur is None:
                continue
            d = decide(club_id, cur, None, o)
            outs[i] = d.outcome
            if d.member is not None:
                ops.append((*self._cas(club_id, o.person.id, cur, d.member, d.outcome.changed), False))
                where.append(i)
                known[o.person.id] = d.member
                if d.log is not None:
                    logs.append(d.log)
        matched = self._bulk("observe_many", self.clubs, ops)
        if logs:
            self._call("log", self.log.insert_many, [dict(x) for x in logs])
        if matched < len(ops):  # a racing writer: redo those members one by one (guards decide)
            for i in where:
                outs[i] = self.observe(club_id, obs[i])
        for i, o in enumerate(obs):
            if outs[i] is None:
                outs[i] = self.observe(club_id, o)
        return outs  # type: ignore[return-value]

    def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime],
                        first_seen: Optional[Dict[Tuple[str, int], datetime]] = None,
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None) -> int:
        """One bulk write, a few guarded updates per member that wrote: never backwards. The same
        rules as the SQLite flush: last_seen and proof_at forwards, joined_at/source by the earliest
        evidence, and status_at of a member active by messages alone lowered to `active_since`
        when that is after their last member event (status_at > since > hard_at also says the
        member is active by messages alone, so no field is compared with another)."""
        ops = [({"_id": cid, "members": {"$elemMatch": {"telegram_id": tid, "$or": [
                    {"last_seen": {"$lt": at}}, {"last_seen": None}]}}},
                {"$set": {"members.$.last_seen": at}}, False) for (cid, tid), at in seen.items()]
        ops += [({"_id": cid, "members": {"$elemMatch": {"telegram_id": tid, "$or": [
                    {"proof_at": {"$lt": at}}, {"proof_at": None}]}}},
                 {"$set": {"members.$.proof_at": at}}, False) for (cid, tid), at in seen.items()]
        ops += [({"_id": cid, "members": {"$elemMatch": {
                    "telegram_id": tid, "status": "active", "status_at": {"$gt": since},
                    "$or": [{"hard_at": None}, {"hard_at": {"$lt": since}}]}}},
                 {"$set": {"members.$.status_at": since}}, False)
                for (cid, tid), since in (active_since or {}).items()]
        for (cid, tid), at in (first_seen or {}).items():
            ops.append(({"_id": cid, "members": {"$elemMatch": {"telegram_id": tid, "$or": [
                {"joined_at": {"$gt": at}}, {"joined_at": None},
                {"joined_at": at, "source": {"$in": ["service_message", "member_import", "history_import"]}}]}}},
                {"$set": {"members.$.joined_at": at, "members.$.source": "message_activity"}}, False))
        for (cid, tid), last in seen.items():  # a newer message proves an inactive member back
            first = (first_seen or {}).get((cid, tid), last)
            for since, status_at in ((first, first), (last, last)):
                ops.append(({"_id": cid, "members": {"$elemMatch": {
                    "telegram_id": tid, "status": {"$ne": "active"},
                    "$or": [{"hard_at": {"$lt": since}}, {"hard_at": None}]}}},
                    {"$set": {"members.$.status": "active", "members.$.status_at": status_at,
                              "members.$.proof_at": last}, "$inc": {"version": 1}}, False))
        self._bulk("flush_last_seen", self.clubs, ops)
        self._record_activity(seen, first_seen)
        return len(seen)

    def active_count(self, club_id: str) -> int:
        doc = self._call("active_count", self.clubs.find_one, {"_id": club_id}, {"members.status": 1})
        return sum(1 for m in (doc or {}).get("members") or [] if m.get("status") == "active")
