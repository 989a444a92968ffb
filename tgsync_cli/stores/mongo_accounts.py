"""An account's times on MongoDB as functions of the events, not of the order they arrive in.

The upsert that creates an account writes the event's own time into both. Met again, by an event
of any time: `created_at` moves back to the earliest event that created or confirmed the account
(only on an account tgsync made: one holding the app's fields keeps the app's own), and
`updated_at` with the Telegram names forward to the newest (a tie: the later delivered). Each is
a write guarded on the stored time, in either form the collection uses, so two processes meeting
the same account settle on the same values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from tgsync_cli.stores.mongo_shapes import (TimeForm, as_tid, member_entries, read_time, read_user, tid_forms, time_cmp,
                                             time_or_none)

Op = Tuple[Dict[str, Any], Dict[str, Any]]


def account_time_ops(found: Mapping[str, Any], inserted: bool, at: datetime, fields: Dict[str, Any],
                     form: TimeForm, tgsync_made: bool, keep_names: bool) -> List[Op]:
    """The guarded updates (filter, update) that the event at `at` still owes the account `found`
    (as read back after the upsert). `fields`: the names and updated_at, in the collection's form."""
    if inserted:
        return []
    doc = read_user(dict(found)) or {}
    ops: List[Op] = []
    created, updated = doc.get("created_at"), doc.get("updated_at")
    if tgsync_made and (created is None or (isinstance(created, datetime) and created > at)):
        ops.append(({"_id": found["_id"], "$or": [*time_cmp("created_at", "$gt", at), {"created_at": None}]},
                    {"$set": {"created_at": form.out(at)}}))
    if updated is None or (isinstance(updated, datetime) and updated <= at):
        sets = {"updated_at": fields["updated_at"]} if keep_names else fields
        ops.append(({"_id": found["_id"], "$or": [*time_cmp("updated_at", "$lte", at), {"updated_at": None}]},
                    {"$set": sets}))
    return ops



def back_dated(times: Mapping[str, Any], joined: datetime, was: Sequence[datetime],
               newest: Callable[[], List[datetime]], form: TimeForm) -> List[Op]:
    """The account (its times as read) once a membership's joined_at moved back to `joined` from
    one of `was`: created_at to it, and updated_at, when it was such an old joined_at, to the
    newest joined_at of the person's clubs (`newest`, asked only then: it costs a read). Per
    field, the guard on what was read and the value to set under it."""
    created, updated = times.get("created_at"), times.get("updated_at")
    out: List[Op] = []
    if created is None or (isinstance(created, datetime) and created > joined):
        out.append(({"$or": [*time_cmp("created_at", "$gt", joined), {"created_at": None}]},
                    {"created_at": form.out(joined)}))
    if isinstance(updated, datetime) and updated in was:
        floor = min(joined, created) if isinstance(created, datetime) else joined
        out.append(({"$or": time_cmp("updated_at", "$eq", updated)},
                    {"updated_at": form.out(max([floor, *newest()]))}))
    return out


def date_account_back(call: Callable[..., Any], users: Any, clubs: Any, tid_filter: Dict[str, Any],
                      joined: datetime, was: datetime, form: TimeForm,
                      tgsync_made: Callable[[Optional[Mapping[str, Any]]], bool]) -> None:
    """Earlier evidence of a member than their joined_at (`was`): the account's times follow it
    back, created_at to it, and updated_at, when it was that old joined_at, to the newest joined_at
    of the person's clubs. Rare, so reads and writes guarded on the stored times; an account
    holding the app's fields keeps the app's dates."""
    doc = call("date_account_back", users.find_one, tid_filter)
    if doc is None or not tgsync_made(doc):
        return

    def newest() -> List[datetime]:
        tid = as_tid(doc.get("telegram_id"))
        found = call("date_account_back", lambda: list(clubs.find(
            {"members.telegram_id": tid_filter["telegram_id"]}, {"members.telegram_id": 1, "members.joined_at": 1})))
        times = [read_time(m.get("joined_at")) for c in found
                 for m in c.get("members") or () if as_tid(m.get("telegram_id")) == tid]
        return [t for t in times if isinstance(t, datetime)]

    owed = back_dated(read_user(dict(doc)) or {}, joined, [was], newest, form)
    if owed:
        call("date_account_back", users.update_one, {"_id": doc["_id"], "$and": [g for g, _ in owed]},
             {"$set": {k: v for _, sets in owed for k, v in sets.items()}})


Key = Tuple[str, int]  # (club id, telegram id)
RETRIES = 4
READ_CHUNK = 10_000  # people per read: the filter holds their ids, well under MongoDB's 16 MB


def flushed_back(times: Mapping[str, Any], firsts: Mapping[str, datetime],
                 joined: Mapping[str, Optional[datetime]], form: TimeForm) -> List[Op]:
    """What the flush's messages (`firsts`: the earliest per club) owe the account, given the
    person's joined_at per club before the flush (`joined`): the memberships whose joined_at the
    flush moves back, each as `back_dated` would take it, all at once."""
    moved = {cid: at for cid, at in firsts.items() if (t := joined.get(cid)) is not None and t > at}
    if not moved:
        return []
    after = {cid: firsts[cid] if cid in firsts and (t is None or t > firsts[cid]) else t for cid, t in joined.items()}
    newest = [t for t in after.values() if isinstance(t, datetime)]
    was = [t for cid, t in joined.items() if cid in moved and isinstance(t, datetime)]
    return back_dated(times, min(moved.values()), was, lambda: newest, form)


class FlushedAccounts:
    """The accounts of the people a last_seen flush dates back: a buffered message older than a
    membership's joined_at moves it back, and the account's times follow as they do for any
    earlier evidence (`back_dated`). Only accounts updated after the person's earliest flushed
    message can be owed anything (updated_at is at least every joined_at of theirs), so one read
    of those settles the common case, live messages newer than everything: it finds none."""

    def __init__(self, db: Any, tgsync_made: Callable[[Optional[Mapping[str, Any]]], bool]) -> None:
        self.db = db
        self._tgsync_made = tgsync_made

    def date_back(self, first_seen: Mapping[Key, datetime]) -> None:
        """Before the flush's own write, so that a failed one leaves its messages to be flushed
        again with the account still owed (after it, the moved joined_at would hide what was
        owed). The write is guarded on the times read, as every account write is."""
        firsts: Dict[int, Dict[str, datetime]] = {}
        for (cid, tid), at in first_seen.items():
            firsts.setdefault(tid, {})[cid] = at
        owed = self._owed(firsts)
        for _ in range(RETRIES):  # a guard missed: another writer moved the account; again from it
            if not owed:
                return
            joined = self._joined(sorted(owed))
            ops = [({"_id": doc["_id"], **guard}, {"$set": sets}, False) for tid, doc in owed.items()
                   for guard, sets in flushed_back(read_user(dict(doc)) or {}, firsts[tid], joined.get(tid, {}),
                                                   self.db.forms["users"])]
            if self.db.bulk("date_accounts_back", self.db.users, ops) == len(ops):
                return
            owed = self._owed({tid: firsts[tid] for tid in owed})

    def _owed(self, firsts: Mapping[int, Mapping[str, datetime]]) -> Dict[int, Mapping[str, Any]]:
        """tgsync's accounts among these people created or updated after their earliest message
        here: one read per READ_CHUNK people, filtered by the chunk's earliest (a superset, cut
        to each person's own earliest here)."""
        out: Dict[int, Mapping[str, Any]] = {}
        people = sorted(firsts)
        for i in range(0, len(people), READ_CHUNK):
            chunk = people[i:i + READ_CHUNK]
            since = min(at for tid in chunk for at in firsts[tid].values())
            flt = {"telegram_id": {"$in": [f for tid in chunk for f in tid_forms(tid)]},
                   "$or": [*time_cmp("updated_at", "$gt", since), *time_cmp("created_at", "$gt", since)]}
            for doc in self.db.call("date_accounts_back", lambda f=flt: list(self.db.users.find(f))):
                tid = as_tid(doc.get("telegram_id"))
                if tid is None or tid not in firsts or not self._tgsync_made(doc):
                    continue
                times = read_user(dict(doc)) or {}
                earliest = min(firsts[tid].values())
                if any(isinstance(t, datetime) and t > earliest
                       for t in (times.get("created_at"), times.get("updated_at"))):
                    out[tid] = doc
        return out

    def _joined(self, tids: List[int]) -> Dict[int, Dict[str, Optional[datetime]]]:
        """Each person's joined_at per club, as stored before the flush writes."""
        docs = self.db.call("date_accounts_back", lambda: list(self.db.clubs.find(
            {"members.telegram_id": {"$in": [f for tid in tids for f in tid_forms(tid)]}},
            self.db.fields({"members.telegram_id": 1, "members.joined_at": 1}))))
        wanted = set(tids)
        out: Dict[int, Dict[str, Optional[datetime]]] = {}
        for doc in docs:
            for m in member_entries(doc):
                tid = as_tid(m.get("telegram_id"))
                if tid in wanted:
                    out.setdefault(tid, {})[doc["_id"]] = time_or_none(m.get("joined_at"))
        return out
