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
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from tgsync_cli.stores.mongo_shapes import TimeForm, as_tid, read_time, read_user, time_cmp

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
    times = read_user(dict(doc)) or {}
    created, updated = times.get("created_at"), times.get("updated_at")
    sets: Dict[str, Any] = {}
    guards: List[Dict[str, Any]] = []
    if created is None or (isinstance(created, datetime) and created > joined):
        sets["created_at"] = form.out(joined)
        guards.append({"$or": [*time_cmp("created_at", "$gt", joined), {"created_at": None}]})
    if updated == was:
        tid = as_tid(doc.get("telegram_id"))
        found = call("date_account_back", lambda: list(clubs.find(
            {"members.telegram_id": tid_filter["telegram_id"]}, {"members.telegram_id": 1, "members.joined_at": 1})))
        newest = [read_time(m.get("joined_at")) for c in found
                  for m in c.get("members") or () if as_tid(m.get("telegram_id")) == tid]
        floor = min(joined, created) if isinstance(created, datetime) else joined
        sets["updated_at"] = form.out(max([floor, *(t for t in newest if isinstance(t, datetime))]))
        guards.append({"$or": time_cmp("updated_at", "$eq", was)})
    if sets:
        call("date_account_back", users.update_one, {"_id": doc["_id"], "$and": guards}, {"$set": sets})
