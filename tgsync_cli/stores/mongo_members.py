"""MongoDB member writes: read the member, decide (core.evidence.decide), write guarded on what was
read, retry when another writer got there first; and the last_seen flush.

A first sighting costs two round trips, as the issue's floor says: the account upsert, then one
`$push` guarded on the member's absence AND on no departure note for them (`departed_ids`, a
club-document mirror of the departures collection, see below). No read comes first: the store
remembers which members each club had (`_known`, from the cold-start index and its own writes),
and a wrong guess only costs a miss and the read-decide-write path.

The membership_log entry of a change rides in the same update, in the club document's
`log_pending` outbox, so the change and its entry are one atomic write (a crash between two
writes can no longer lose or double an entry). `settle()` moves the outbox into the
`membership_log` collection, by entry `_id` so two processes moving the same entry keep one; the
last_seen flush does it on the way. Readers (history, export, counts) see both places.

`departed_ids` holds every telegram id with a departure note in this club, and maybe a few more:
the id is added before the note is written and removed only when a membership is created, so a
note never exists without its id, and an id without a note costs only a read."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from tgsync_cli.core.documents import MemberDoc
from tgsync_cli.core.errors import StoreConflict, StoreUnavailable
from tgsync_cli.core.events import Person
from tgsync_cli.core.evidence import ACTIVE, AFTER_MESSAGES, KEEP_SEEN_TIMES, MESSAGES, Observation, Outcome, decide
from tgsync_cli.stores.common import member_doc
from tgsync_cli.stores.mongo_db import MongoDb
from tgsync_cli.stores.mongo_insights import MongoInsights
from tgsync_cli.stores.mongo_shapes import (
    app_role_kept,
    as_tid,
    PUSHABLE,
    cas,
    is_null,
    member_entries,
    read_member,
    tid_match,
    time_cmp,
    time_eq,
    written,
)

RETRIES = 8
_CAS_KEYS = ("status", "status_at", "role", "role_at", "joined_at", "source", "hard_at", "proof_at",
             "prior_at", "confirmed_at", "seen_times", "last_seen", "invited_by", "invite_link")

# a message brings back a member who left or was kicked, whatever their role: the usual pairs
# with the log entry of that change (SQLite logs it too), then anything else the app holds
BACK_FROM = (("left", "member"), ("left", "organizer"), ("kicked", "member"), ("kicked", "organizer"),
             (None, None))


def before(field: str, at: datetime) -> List[Dict[str, Any]]:
    """`field` unset, null or older than `at`, in either stored form (an `$or`'s alternatives)."""
    return [*time_cmp(field, "$lt", at), {field: None}]


def fresh(prev: dict, obs: Observation) -> bool:
    """Evidence newer than everything the member's entry held when it was last read: a member
    someone removed since comes back on that, never on what was already known."""
    known = [t for t in (prev.get(k) for k in ("status_at", "hard_at", "role_at", "proof_at", "last_seen"))
             if isinstance(t, datetime)]
    return not known or obs.at > max(known)


class MongoMembers:
    """A part MongoStore holds: given the database, how an account is upserted, and the insights
    part (the flush records who wrote in which week)."""

    def __init__(self, db: MongoDb, account: Callable[[Person, datetime, bool], str],
                 insights: MongoInsights, date_back: Callable[[int, datetime, datetime], None],
                 flushed_back: Callable[[Dict[Tuple[str, int], datetime]], None]) -> None:
        self.db = db
        self._account = account
        self._date_back = date_back  # earlier evidence: the account's created_at moves back
        self._flushed_back = flushed_back  # the same for the flush's messages, all at once
        self.insights = insights
        self._known: Dict[str, Set[int]] = {}  # club -> telegram ids it had (a hint: see above)
        self._outbox: Dict[str, int] = {}  # clubs whose outbox to settle -> writes to it so far
        self._settle_lock = threading.RLock()
        self._maybe_logged: Set[str] = set()  # clubs a flush may have logged a return in

    # -- the member hint ---------------------------------------------------------------------------
    def remember(self, club_id: str, telegram_ids: Set[int]) -> None:
        """The members a club has, as a read just showed them."""
        self._known[club_id] = set(telegram_ids)

    def forget_hint(self, telegram_id: int) -> None:
        for known in self._known.values():
            known.discard(telegram_id)

    def clear_hints(self) -> None:
        """Members arrived behind this process's back (a copy): guess nothing."""
        self._known.clear()

    # -- members -----------------------------------------------------------------------------------
    def _raw_member(self, club_id: str, tid: int) -> Tuple[bool, Optional[dict], bool]:
        """(club exists, the member or None, a departure note may exist) in one read."""
        doc = self.db.call("member", self.db.clubs.find_one, {"_id": club_id},
                           {"members": {"$elemMatch": {"telegram_id": tid_match(tid)}}, "departed_ids": 1})
        if doc is None:
            return False, None, False
        ms = doc.get("members") or []
        if ms:
            self._known.setdefault(club_id, set()).add(tid)
        return True, (ms[0] if ms else None), tid in (doc.get("departed_ids") or ())

    def member(self, club_id: str, tid: int) -> Optional[MemberDoc]:
        _, m, _ = self._raw_member(club_id, tid)
        return member_doc(read_member(m)) if m else None

    def _cas(self, club_id: str, tid: int, current: dict, new: dict, changed: bool) -> Tuple[dict, dict]:
        """`current` as stored (the guard compares stored forms); see mongo_shapes.cas."""
        flt, upd, _ = cas(club_id, current, new, _CAS_KEYS, changed, self.db.forms["clubs"])
        return flt, upd

    @staticmethod
    def _entry(log: Optional[dict]) -> Optional[dict]:
        """A membership_log entry with the id it keeps from the outbox to the collection."""
        from bson import ObjectId

        return None if log is None else {"_id": ObjectId(), **log}

    def _write(self, club_id: str, entry: Optional[dict], fn, *args):
        """One guarded update, maybe carrying an outbox entry: then the club's outbox is looked at
        by the next settle, whether the write landed, missed or failed (a lost reply may have)."""
        if entry is not None:
            self.touched(club_id)
        return self.db.call("observe", fn, *args)

    def touched(self, club_id: str) -> None:
        """A write to this club's outbox (maybe another process's, left behind): settle it."""
        self._outbox[club_id] = self._outbox.get(club_id, 0) + 1

    def _first_sighting(self, club_id: str, obs: Observation) -> Optional[Outcome]:
        """Two round trips: the account, then the membership and its log entry in one `$push`
        that holds only while the club has no such member and no departure note for them.
        None: it did not hold (a member, a note, or no club) and the caller reads and decides."""
        d = decide(club_id, None, None, obs)
        if d.member is None:
            return None
        tid = obs.person.id
        m = dict(d.member)
        m["user_id"] = self._account(obs.person, obs.evidence_at or obs.at, obs.keep_names)
        entry = self._entry(d.log)
        push: Dict[str, Any] = {"members": written(m, self.db.forms["clubs"])}
        if entry is not None:
            push["log_pending"] = entry
        r = self._write(club_id, entry, self.db.clubs.update_one,
                        {"_id": club_id, "members.telegram_id": {"$nin": tid_match(tid)["$in"]},
                         "departed_ids": {"$ne": tid}, "$or": PUSHABLE},
                        {"$push": push, "$inc": {"version": 1}})
        if not r.matched_count:
            return None
        self._known.setdefault(club_id, set()).add(tid)
        return d.outcome

    def observe(self, club_id: str, obs: Observation) -> Outcome:
        tid = obs.person.id
        if obs.create and obs.status == ACTIVE and tid not in self._known.get(club_id, ()):
            out = self._first_sighting(club_id, obs)
            if out is not None:
                return out
        prev: Optional[dict] = None  # the member as a write that missed saw them
        for _ in range(RETRIES):
            exists, current, noted = self._raw_member(club_id, tid)
            if not exists:
                return Outcome(tid)
            if current is None and prev is not None and obs.status == ACTIVE and not fresh(prev, obs):
                return Outcome(tid)  # removed (by the app) meanwhile: only newer evidence brings them back
            dep = None
            if current is None and noted:
                dep = self.db.call("departure", self.db.departures.find_one, {"club_id": club_id, "telegram_id": tid})
            norm = read_member(current) if current is not None else None
            d = decide(club_id, norm, dep, app_role_kept(norm, obs))
            if d.departure is not None:
                self._insert_departure(d.departure, exists=dep is not None, noted=noted)
            if d.member is not None:
                entry = self._entry(d.log)
                if current is None:
                    m = dict(d.member)
                    m["user_id"] = self._account(obs.person, obs.evidence_at or obs.at, obs.keep_names)
                    flt: Dict[str, Any] = {"_id": club_id, "members.telegram_id": {"$nin": tid_match(tid)["$in"]},
                                           "$or": PUSHABLE}  # a push onto null fails
                    upd: Dict[str, Any] = {"$push": {"members": written(m, self.db.forms["clubs"])},
                                           "$inc": {"version": 1}}
                    if noted:  # the note goes below; its id with the membership, atomically
                        upd["$pull"] = {"departed_ids": tid}
                else:
                    flt, upd = self._cas(club_id, tid, current, d.member, d.outcome.changed)
                    upd["$push"] = {}
                if entry is not None:
                    upd["$push"]["log_pending"] = entry
                if not upd["$push"]:
                    del upd["$push"]
                r = self._write(club_id, entry, self.db.clubs.update_one, flt, upd)
                if not r.matched_count:
                    if current is None:  # the app's club may hold `members: null`: an empty list first
                        self.db.call("observe", self.db.clubs.update_one, {"_id": club_id, "$and": is_null("members")},
                                   {"$set": {"members": []}})
                    prev = norm or prev
                    continue  # another writer changed this member first: decide again
                self._known.setdefault(club_id, set()).add(tid)
                if d.dated_back is not None:
                    self._date_back(tid, *d.dated_back)
            if d.clear_departure:
                self.db.call("clear_departure", self.db.departures.delete_one, {"club_id": club_id, "telegram_id": tid})
            return d.outcome
        raise StoreUnavailable(f"{self.db.uri_label}: member {tid} kept changing under this write")

    def _insert_departure(self, dep: dict, exists: bool = False, noted: bool = False) -> None:
        if not noted:  # the id first: a note must never exist without it (first sightings check it)
            self.db.call("record_departure", self.db.clubs.update_one, {"_id": dep["club_id"]},
                       {"$addToSet": {"departed_ids": dep["telegram_id"]}})
        if not exists:
            try:
                self.db.call("record_departure", self.db.departures.insert_one, dict(dep))
                return
            except StoreConflict:  # a racing leave noted first: keep the newer of the two
                pass
        try:  # an upsert: the note read a moment ago may have been pruned since
            self.db.call("record_departure", self.db.departures.update_one,
                       {"club_id": dep["club_id"], "telegram_id": dep["telegram_id"], "at": {"$lte": dep["at"]}},
                       {"$set": {"status": dep["status"], "at": dep["at"]}}, upsert=True)
        except StoreConflict:  # a newer note stands
            pass

    def observe_many(self, club_id: str, observations: Sequence[Observation],
                     complete_at: Optional[datetime] = None, complete_source: str = "member_import"
                     ) -> List[Outcome]:
        """A listing: observations of members already in the club are decided on one read and
        written in one bulk (each op compare-and-set); new ones go through `observe`."""
        doc = self.db.call("observe_many", self.db.clubs.find_one, {"_id": club_id}, {"members": 1})
        if doc is None:
            return [Outcome(o.person.id) for o in observations]
        # members the app added itself (no Telegram id) are never listed, never marked left
        known: Dict[int, dict] = {}
        for m in member_entries(doc):
            t = as_tid(m.get("telegram_id"))
            if t is not None:
                known[t] = m
        obs = list(observations)
        if complete_at is not None:
            listed = {o.person.id for o in obs}
            obs += [Observation(Person(t), "left", "member", complete_at, complete_source, create=False)
                    for t, m in known.items() if t not in listed and m.get("status") == "active"]
        outs: List[Optional[Outcome]] = [None] * len(obs)
        ops, where, logged = [], [], False
        for i, o in enumerate(obs):
            cur = known.get(o.person.id)
            if cur is None:
                continue
            norm = read_member(cur)
            d = decide(club_id, norm, None, app_role_kept(norm, o))
            outs[i] = d.outcome
            if d.member is not None:
                flt, upd, stored = cas(club_id, cur, d.member, _CAS_KEYS, d.outcome.changed, self.db.forms["clubs"])
                entry = self._entry(d.log)
                if entry is not None:  # the entry only lands if its change does
                    upd["$push"] = {"log_pending": entry}
                    logged = True
                ops.append((flt, upd, False))
                where.append(i)
                known[o.person.id] = stored
        if logged:
            self.touched(club_id)
        matched = self.db.bulk("observe_many", self.db.clubs, ops)
        if matched < len(ops):  # a racing writer: redo those members one by one (guards decide)
            for i in where:
                outs[i] = self.observe(club_id, obs[i])
        for i, o in enumerate(obs):
            if outs[i] is None:
                outs[i] = self.observe(club_id, o)
        return outs  # type: ignore[return-value]

    # -- the membership_log outbox ------------------------------------------------------------------
    def _settle_ops(self) -> Tuple[List[Tuple[dict, dict, bool]], Dict[str, int]]:
        """Copy the outbox of the clubs this process wrote to into membership_log and return the
        clubs ops that empty it, for the caller's next bulk. Two round trips: the outbox as it is
        now (not as this process remembers it: a `forget` may have taken entries out), then the
        insert (an entry another process moved already is kept once)."""
        from pymongo.errors import BulkWriteError

        if not self._outbox:
            return [], {}
        seen = dict(self._outbox)
        docs = self.db.call("settle_log", lambda: list(self.db.clubs.find(
            {"_id": {"$in": sorted(seen)}, "log_pending.0": {"$exists": True}}, {"log_pending": 1})))
        entries = [e for d in docs for e in d.get("log_pending") or []]
        if not entries:
            return [], seen

        def insert():
            try:
                self.db.log.insert_many([dict(e) for e in entries], ordered=False)
            except BulkWriteError as exc:
                if any(w.get("code") != 11000 for w in exc.details.get("writeErrors", [])):
                    raise
        self.db.call("settle_log", insert)
        return [({"_id": d["_id"]}, {"$pull": {"log_pending": {"_id": {"$in": [
            e["_id"] for e in d.get("log_pending") or []]}}}}, False) for d in docs], seen

    def _settled(self, seen: Dict[str, int]) -> None:
        """Clubs written to again meanwhile stay for the next settle."""
        for cid, n in seen.items():
            if self._outbox.get(cid) == n:
                del self._outbox[cid]

    def settle(self) -> None:
        """Finish the membership_log entries this process wrote (the outbox, see the module's
        docstring): three round trips, none when this process wrote nothing since the last."""
        with self._settle_lock:
            for cid in self._maybe_logged:
                self.touched(cid)
            self._maybe_logged.clear()
            ops, seen = self._settle_ops()
            self.db.bulk("settle_log", self.db.clubs, ops)
            self._settled(seen)

    def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime],
                        first_seen: Optional[Dict[Tuple[str, int], datetime]] = None,
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None,
                        message_times: Optional[Dict[Tuple[str, int], List[datetime]]] = None) -> int:
        """One bulk write of the clubs, a few guarded updates per member that wrote: never backwards. The same
        rules as the SQLite flush: last_seen and proof_at forwards, joined_at/source by the earliest
        evidence, each message time after the member's last member event kept (the earliest few)
        and status_at of a member active by messages alone lowered to the earliest of them
        (status_at > t > hard_at also says the member is active by messages alone, so no field is
        compared with another).

        The account's times follow a joined_at the flush moves back (an old message imported
        after the join), and a bulk update of `clubs` can neither touch `users` nor tell which of
        its updates matched. So the flush first reads the accounts that could owe anything (updated
        after the person's earliest message here): a third round trip, a read. Live messages are
        newer than every account, so it finds none and no account is written; only old messages
        cost more (a read of the joined_ats they move, one guarded bulk of the accounts). The read
        goes before the clubs bulk, not after: the old joined_at is what updated_at is compared
        with, and a flush that fails after the accounts were written is retried with nothing lost.
        It is sound across processes because a joined_at only ever moves back and updated_at is
        never older than any of the person's joined_ats: an account the read does not find has
        no membership the flush can move (short of one forgotten and made again in between)."""
        form = self.db.forms["clubs"]
        first_seen = first_seen or {}
        if first_seen:
            self._flushed_back(first_seen)
        times = {key: sorted(set((message_times or {}).get(key) or [
            t for t in (first_seen.get(key), (active_since or {}).get(key), at) if t is not None]))
            for key, at in seen.items()}
        ops: List[Tuple[dict, dict, bool]] = [
            ({"_id": cid, "members": {"$elemMatch": {"telegram_id": tid_match(tid), "$or": before("last_seen", at)}}},
             {"$set": {"members.$.last_seen": form.out(at)}}, False) for (cid, tid), at in seen.items()]
        ops += [({"_id": cid, "members": {"$elemMatch": {"telegram_id": tid_match(tid),
                                                         "$or": before("proof_at", at)}}},
                 {"$set": {"members.$.proof_at": form.out(at)}}, False) for (cid, tid), at in seen.items()]
        ops += [({"_id": cid, "members": {"$elemMatch": {
                    "telegram_id": tid_match(tid), "status": "active", "$and": [
                        {"$or": time_cmp("status_at", "$gt", since)}, {"$or": before("hard_at", since)}]}}},
                 {"$set": {"members.$.status_at": form.out(since)}}, False)
                for (cid, tid), ts in times.items() for since in ts]
        for (cid, tid), ts in times.items():  # none held yet: a new list; else one more, kept few
            for t in ts:
                guard: Dict[str, Any] = {"telegram_id": tid_match(tid), "$or": before("hard_at", t)}
                ops.append(({"_id": cid, "members": {"$elemMatch": {**guard, "seen_times": None}}},
                            {"$set": {"members.$.seen_times": [form.out(t)]}}, False))
                ops.append(({"_id": cid, "members": {"$elemMatch": {
                    **guard, "seen_times": {"$nin": [None, form.out(t)]}}}}, {"$push": {"members.$.seen_times": {
                        "$each": [form.out(t)], "$sort": 1, "$slice": KEEP_SEEN_TIMES}}}, False))
        for (cid, tid), at in first_seen.items():
            ops.append(({"_id": cid, "members": {"$elemMatch": {"telegram_id": tid_match(tid), "$or": [
                *time_cmp("joined_at", "$gt", at), {"joined_at": None},
                {**time_eq("joined_at", at), "source": {"$in": list(AFTER_MESSAGES)}}]}}},
                {"$set": {"members.$.joined_at": form.out(at), "members.$.source": MESSAGES}}, False))
        logged = set()
        for (cid, tid), last in seen.items():  # a newer message proves an inactive member back
            first = first_seen.get((cid, tid), last)
            # the earliest after the member event that made them inactive: the first op to match
            for since in sorted({first, last, *times[(cid, tid)]}):
                status_at = since
                for was, role in BACK_FROM:  # each with the log entry of its own change; the last
                    # (an app's role or status) whatever the earlier ones left inactive, unlogged
                    elem: Dict[str, Any] = {"telegram_id": tid_match(tid), "$or": before("hard_at", since)}
                    elem["status"] = was or {"$ne": "active"}
                    if was:
                        elem["role"] = role
                    upd: Dict[str, Any] = {"$set": {"members.$.status": "active",
                                                    "members.$.status_at": form.out(status_at),
                                                    "members.$.proof_at": form.out(last)}, "$inc": {"version": 1}}
                    if was and role:
                        upd["$push"] = {"log_pending": self._entry({
                            "club_id": cid, "telegram_id": tid, "at": status_at, "from": {"status": was, "role": role},
                            "to": {"status": "active", "role": role}, "source": "message_activity", "actor": None,
                            "invite_link": None, "invited_by": None})}
                        logged.add(cid)
                    ops.append(({"_id": cid, "members": {"$elemMatch": elem}}, upd, False))
        # the entries ride with their change. Whether one landed is not known without a read, so
        # the flush reads no more for them: they move with the club's next logged write, an
        # explicit settle (a clean stop) or the next start; readers see the outbox meanwhile
        self._maybe_logged |= logged
        with self._settle_lock:  # log entries written since the last flush: moved on the way
            settle, outboxes = self._settle_ops()
            self.db.bulk("flush_last_seen", self.db.clubs, ops + settle)
            self._settled(outboxes)
        self.insights.record_activity(seen, first_seen)
        return len(seen)

    def app_only_active(self, club_id: str) -> int:
        """Members the app added itself with status active (or none: the app may not keep one)."""
        doc = self.db.call("app_only_active", self.db.clubs.find_one, {"_id": club_id},
                         self.db.fields({"members.status": 1, "members.telegram_id": 1}))
        return sum(1 for m in member_entries(doc)
                   if m.get("status", "active") == "active" and as_tid(m.get("telegram_id")) is None)

    def active_count(self, club_id: str) -> int:
        doc = self.db.call("active_count", self.db.clubs.find_one, {"_id": club_id},
                           self.db.fields({"members.status": 1, "members.telegram_id": 1}))
        return sum(1 for m in member_entries(doc)
                   if m.get("status") == "active" and as_tid(m.get("telegram_id")) is not None)
