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
from typing import Any, Dict, List, Mapping, Tuple

from tgsync_cli.stores.mongo_shapes import TimeForm, read_user, time_cmp

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
