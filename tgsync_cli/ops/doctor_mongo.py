"""doctor on a `mongodb://` store: the database's shape, read before anything is written.

What the Ayda Run app keeps beside tgsync's documents (clubs with no Telegram group, accounts
and members with no Telegram id), the forms tgsync reads but did not write (string ids, string
dates), and what would stop `tgsync store init` (duplicates of a numeric id): counts and one
example `_id` each, so an operator can look at the document before deciding anything."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, Dict, List, Optional

from tgsync_cli.stores.mongo_shapes import MEMBER_TIME_KEYS, USER_TIME_KEYS, as_tid, member_entries

MAX_EXAMPLE = 60


class Tally:
    """How many documents show one shape, and the first one's _id."""

    def __init__(self) -> None:
        self.n = 0
        self.example: Optional[str] = None

    def add(self, example: Any) -> None:
        self.n += 1
        if self.example is None:
            self.example = str(example)[:MAX_EXAMPLE]

    def text(self, what: str) -> str:
        return f"{self.n} {what}" + (f" (e.g. {self.example})" if self.example else "")


def inspect_shape(db) -> Dict[str, Tally]:
    """One pass over clubs and users, only the fields that matter (projections)."""
    t: Dict[str, Tally] = defaultdict(Tally)
    gids: Counter = Counter()
    gid_example: Dict[int, str] = {}
    for c in db["clubs"].find({}, {"telegram_group_id": 1, "members": 1}):
        gid = c.get("telegram_group_id")
        number = as_tid(gid)
        if number is None:
            t["app_clubs"].add(c["_id"])
        else:
            if isinstance(gid, str):
                t["string_group_ids"].add(c["_id"])
            else:  # the forms the unique index holds
                gids[number] += 1
                gid_example.setdefault(number, c["_id"])
        seen: Counter = Counter()
        for m in member_entries(c):
            if not isinstance(m, dict):
                continue
            tid = as_tid(m.get("telegram_id"))
            where = f"{c['_id']} / {m.get('user_id') or m.get('telegram_id')}"
            if tid is None:
                t["app_members"].add(where)
            else:
                seen[tid] += 1
                if isinstance(m.get("telegram_id"), str):
                    t["string_member_ids"].add(where)
                elif isinstance(m.get("telegram_id"), float):
                    t["double_member_ids"].add(where)
            if any(isinstance(m.get(k), str) for k in MEMBER_TIME_KEYS):
                t["string_member_dates"].add(where)
            if any(isinstance(m.get(k), datetime) for k in MEMBER_TIME_KEYS):
                t["date_member_dates"].add(where)
            if m.get("role") not in (None, "organizer", "member"):
                t["app_roles"].add(f"{where}: {m.get('role')!s}"[:MAX_EXAMPLE])
        for tid, n in seen.items():
            if n > 1:
                t["duplicate_members"].add(f"{c['_id']} / {tid}")
    for gid, n in gids.items():
        if n > 1:
            t["duplicate_group_ids"].add(gid_example[gid])
    tids: Counter = Counter()
    tid_example: Dict[int, str] = {}
    forms: Dict[int, set] = defaultdict(set)
    for u in db["users"].find({}, {"telegram_id": 1, **dict.fromkeys(USER_TIME_KEYS, 1)}):
        raw = u.get("telegram_id")
        tid = as_tid(raw)
        if tid is None:
            t["app_accounts"].add(u["_id"])
            continue
        forms[tid].add(type(raw).__name__)
        if isinstance(raw, str):
            t["string_account_ids"].add(u["_id"])
        else:
            tids[tid] += 1
            tid_example.setdefault(tid, u["_id"])
        if any(isinstance(u.get(k), str) for k in USER_TIME_KEYS):
            t["string_account_dates"].add(u["_id"])
    for tid, n in tids.items():
        if n > 1:
            t["duplicate_account_ids"].add(tid_example[tid])
    for tid, kinds in forms.items():
        if len(kinds) > 1:
            t["accounts_in_two_forms"].add(tid)
    return t


def shape_checks(store, check) -> List[Any]:
    """doctor's Check rows for a MongoDB store (`check` builds one: name, level, detail, fix)."""
    from tgsync_cli.stores import mongo_indexes

    db = store._db
    out = [check("database", "ok", f"{db.name} (times written as {store.forms['clubs'].form} in clubs, "
                                   f"{store.forms['users'].form} in users)")]
    t = store._call("doctor", inspect_shape, db)
    states = store._call("doctor", mongo_indexes.inspect, db)
    missing = [s.want.describe() for s in states if s.state == "missing"]
    differs = [f"{s.want.label}: {s.detail}" for s in states if s.state == "differs"]
    dup = [(k, w) for k, w in (("duplicate_group_ids", "clubs share a numeric telegram_group_id"),
                               ("duplicate_account_ids", "accounts share a numeric telegram_id")) if t[k].n]
    if dup:
        out.append(check("index blockers", "fail", "; ".join(t[k].text(w) for k, w in dup),
                         "merge or renumber those documents, then run `tgsync store init`"))
    if missing:
        out.append(check("store indexes", "fail", "missing: " + ", ".join(missing),
                         "run `tgsync store init` (it creates tgsync's indexes and nothing else)"))
    else:
        out.append(check("store indexes", "ok", "tgsync's indexes are there (unique ids where they are numbers)"))
    if differs:
        out.append(check("app's indexes", "warn", "; ".join(differs),
                         "kept as they are; tgsync never drops an index"))
    app = [t[k].text(w) for k, w in (("app_clubs", "club(s) with no Telegram group"),
                                     ("app_accounts", "account(s) with no telegram_id"),
                                     ("app_members", "member(s) with no telegram_id"),
                                     ("app_roles", "member(s) with a role of the app's")) if t[k].n]
    out.append(check("the app's documents", "ok",
                     ("; ".join(app) + ": the app's, read and never changed") if app else "none"))
    forms = [t[k].text(w) for k, w in (("string_group_ids", "club(s) with a string telegram_group_id"),
                                       ("string_account_ids", "account(s) with a string telegram_id"),
                                       ("string_member_ids", "member(s) with a string telegram_id"),
                                       ("double_member_ids", "member(s) with a double telegram_id"),
                                       ("string_member_dates", "member(s) with string dates"),
                                       ("string_account_dates", "account(s) with string dates")) if t[k].n]
    out.append(check("stored forms", "ok", ("; ".join(forms) + ": read as ids and times, written back "
                                            "in the same form") if forms else "numbers and dates only"))
    mixed = t["string_member_dates"].n and t["date_member_dates"].n
    odd = [t[k].text(w) for k, w in (("duplicate_members", "telegram id(s) twice in one club"),
                                     ("accounts_in_two_forms", "telegram id(s) with accounts in two forms"))
           if t[k].n]
    if mixed:
        odd.append("members hold both string and BSON dates")
    if odd:
        out.append(check("consistency", "warn", "; ".join(odd),
                         "tgsync matches either copy; merge them in the app to keep one"))
    return out
