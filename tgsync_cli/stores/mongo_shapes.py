"""The shapes the Ayda Run app writes into a shared MongoDB, read as one and written back as found.

The app's seed writes times as ISO-8601 strings (`"2024-12-01T10:00:00Z"`) where tgsync writes
BSON dates, and may hold a `telegram_id` as a string, an int64 or a double. tgsync's rules work on
naive UTC datetimes and int ids, so every document is *read* through `read_time`/`as_tid`, every
query that names a person matches each stored form (`tid_match`), every time comparison matches
both forms (`time_cmp`, MongoDB never compares a string with a date), and every time *written*
takes the form the collection already uses (`TimeForm`, detected once when the store opens).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

# member fields that hold times (tgsync's and the seed's), sync fields that do, account fields that do
MEMBER_TIME_KEYS = ("joined_at", "last_seen", "status_at", "role_at", "hard_at", "proof_at", "prior_at")
MEMBER_TIME_LIST_KEYS = ("confirmed_at", "seen_times")  # lists of times, each in the collection's form
SYNC_TIME_KEYS = ("last_sync", "bot_status_at")
USER_TIME_KEYS = ("created_at", "updated_at")
TIME_FORMATS = ("auto", "date", "iso")


def read_time(v: Any) -> Any:
    """A BSON date or an ISO-8601 string (with `Z`, an offset, or neither: then UTC) → naive UTC.
    Anything else is returned as it is (None stays None; a string that is no time is the app's)."""
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(timezone.utc).replace(tzinfo=None)
        return v
    if isinstance(v, str) and 10 <= len(v) <= 40 and v[:4].isdigit():
        try:
            dt = datetime.fromisoformat(v.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return v
        if dt.tzinfo is not None:
            dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
        return dt
    return v


EPOCH_RANGE = (946684800, 4102444800)  # 2000 … 2100: a number there is a Unix time


def read_epoch(v: Any) -> Any:
    """A time some apps keep as a number: Unix seconds, or milliseconds; None when the number
    cannot be one (a count, a flag)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    for scale in (1, 1000):
        if EPOCH_RANGE[0] <= v / scale < EPOCH_RANGE[1]:
            return datetime.fromtimestamp(v / scale, timezone.utc).replace(tzinfo=None)
    return None


def time_or_none(v: Any) -> Optional[datetime]:
    """A time field the rules compare: a time, or None when it holds anything else (text that
    is no time, a number) — unknown, so the next evidence sets it."""
    t = read_time(v)
    if isinstance(t, (int, float)):
        t = read_epoch(t)
    return t if isinstance(t, datetime) else None


def as_tid(v: Any) -> Optional[int]:
    """A telegram id in any stored form (int, int64, a whole double, a numeric string) → int;
    None when the field holds no Telegram id (missing, null, or text that is not one)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return int(v) if v.is_integer() else None
    if isinstance(v, str):
        s = v.strip()
        if s.lstrip("-").isdigit() and len(s) <= 20:
            return int(s)
    return None


def tid_forms(tid: int) -> List[Any]:
    """Every form one id may be stored in. MongoDB compares int32, int64 and double by value, so
    the number matches all three; the string is the form the app's seed may use."""
    return [tid, str(tid)]


def tid_match(tid: int) -> Dict[str, Any]:
    return {"$in": tid_forms(tid)}


# UTC offsets the app's ISO strings end with (`+05:00`), found when a store opens. Only grows:
# each offset adds alternatives that are exact for strings with that suffix and match nothing
# else, so one found by another store in this process costs a little query text, never a wrong
# answer.
OFFSETS: set = set()
OFFSET_RE = r"[+-]\d\d:\d\d$"
NAIVE_END = r"(T\d\d:\d\d(:\d\d(\.\d+)?)?|^\d{4}-\d\d-\d\d)$"  # no zone: UTC


def _in_offset(at: datetime, offset: str) -> str:
    """`at` (naive UTC) as the ISO string the app writes with `offset` (`+05:00`)."""
    sign = 1 if offset[0] == "+" else -1
    delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])) * sign
    return (at.replace(microsecond=0) + delta).isoformat() + offset


def string_forms(at: datetime) -> List[Tuple[str, str]]:
    """(the regex a stored string's end must match, `at` written the way such strings are):
    `…Z`, no zone (UTC; a date alone is its midnight), and each offset known. Strings written
    alike sort as the times they are, to the second (`…:00.5Z` sorts before `…:00Z`)."""
    base = at.replace(microsecond=0).isoformat()
    forms = [("Z$", base + "Z"), (NAIVE_END, base)]
    return forms + [(re.escape(o) + "$", _in_offset(at, o)) for o in sorted(OFFSETS)]


def time_cmp(field: str, op: str, at: datetime) -> List[Dict[str, Any]]:
    """`field op at` for every stored form: a date compared with a date, an ISO string with the
    same instant written the same way (`Z`, no zone, or the string's own offset), so a string
    is compared as the time it is, never as text in another form. Alternatives of an `$or`;
    MongoDB's type bracketing keeps each to its own form."""
    return [{field: {op: at}}, *({field: {op: text, "$regex": end}} for end, text in string_forms(at))]


def time_eq(field: str, at: datetime) -> Dict[str, Any]:
    return {field: {"$in": [at, *(text for _, text in string_forms(at))]}}


def find_offsets(db) -> None:
    """The offsets the app's member times are written with (a few documents suffice: an app
    writes one or two)."""
    paths = [f"members.{k}" for k in MEMBER_TIME_KEYS if k in ("joined_at", "last_seen", "status_at")]
    for doc in db["clubs"].find({"$or": [{p: {"$regex": OFFSET_RE}} for p in paths]}).limit(20):
        for m in member_entries(doc):
            for k in MEMBER_TIME_KEYS:
                v = m.get(k)
                if isinstance(v, str) and re.search(OFFSET_RE, v) and len(v) <= 40:
                    OFFSETS.add(v[-6:])


def iso_z(dt: datetime) -> str:
    """The seed's own form: second precision, UTC, `Z`."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.replace(microsecond=0).isoformat() + "Z"


class TimeForm:
    """How times are written into one collection: `date` (BSON dates, tgsync's own) or `iso`
    (strings, when the app already writes them so)."""

    def __init__(self, form: str = "date") -> None:
        self.form = form

    def out(self, v: Any) -> Any:
        if self.form == "iso" and isinstance(v, datetime):
            return iso_z(v)
        return v

    def field(self, k: str, v: Any) -> Any:
        """One member field as this collection stores it."""
        if k in MEMBER_TIME_KEYS:
            return self.out(v)
        if k in MEMBER_TIME_LIST_KEYS and isinstance(v, list):
            return [self.out(t) for t in v]
        return v

    def __repr__(self) -> str:
        return f"TimeForm({self.form!r})"


def member_entries(doc: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The entries of a club's `members` that are documents: the app may leave anything there
    (null, a string, a number, or no list at all), and tgsync reads past it and never writes it."""
    ms = (doc or {}).get("members")
    return [m for m in ms if isinstance(m, dict)] if isinstance(ms, list) else []


def read_member(m: Dict[str, Any]) -> Dict[str, Any]:
    """A member entry as the rules see it: times as datetimes, telegram_id as an int."""
    out = dict(m)
    for k in MEMBER_TIME_KEYS:
        if k in out:
            out[k] = time_or_none(out[k])
    for k in MEMBER_TIME_LIST_KEYS:
        if k in out:
            times = [t for t in map(time_or_none, out[k]) if t is not None] if isinstance(out[k], list) else []
            out[k] = times or None
    if "telegram_id" in out:
        tid = as_tid(out["telegram_id"])
        out["telegram_id"] = tid
    return out


def read_sync(sync: Any) -> Dict[str, Any]:
    out = dict(sync) if isinstance(sync, dict) else {}
    for k in SYNC_TIME_KEYS:
        if k in out:
            out[k] = time_or_none(out[k])
    return out


def read_user(u: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if u is None:
        return None
    out = dict(u)
    for k in USER_TIME_KEYS:
        if k in out:
            out[k] = time_or_none(out[k])
    if "telegram_id" in out:
        out["telegram_id"] = as_tid(out["telegram_id"])
    return out


def read_log_entry(e: Any) -> Optional[Dict[str, Any]]:
    """A membership_log entry as readers use it, or None for one nobody can place (no club, no
    Telegram id, no time): entries the app or an older tool wrote in other shapes are read, never
    a crash. `from`/`to` that are not documents read as unknown."""
    if not isinstance(e, dict) or not isinstance(e.get("club_id"), str):
        return None
    tid, at = as_tid(e.get("telegram_id")), time_or_none(e.get("at"))
    if tid is None or at is None:
        return None
    out = dict(e, telegram_id=tid, at=at)
    for k in ("from", "to"):
        if not isinstance(out.get(k), dict):
            out[k] = None
    return out


def is_app_only(m: Dict[str, Any]) -> bool:
    """A member the app added itself: no Telegram id (someone who joined in the app)."""
    return as_tid(m.get("telegram_id")) is None


def detect(db, time_format: str = "auto") -> Dict[str, TimeForm]:
    """The form each collection's times are written in: the setting, or (auto) the form of one
    document that has a time there — the app's if it wrote first, else dates."""
    if time_format not in TIME_FORMATS:
        raise ValueError(f"store.time_format must be one of {', '.join(TIME_FORMATS)}")
    if time_format != "auto":
        find_offsets(db)
        return {"clubs": TimeForm(time_format), "users": TimeForm(time_format)}
    find_offsets(db)
    forms = {"clubs": TimeForm("date"), "users": TimeForm("date")}
    probes = {"clubs": ("members.joined_at", lambda d: [m.get("joined_at") for m in member_entries(d)]),
              "users": ("created_at", lambda d: [d.get("created_at")])}
    for name, (path, values) in probes.items():
        # the whole document: a projection into `members` fails on mongomock when the app left a
        # non-document in the array
        doc = db[name].find_one({"$or": [{path: {"$type": "string"}}, {path: {"$type": "date"}}]})
        for v in values(doc or {}):
            if isinstance(v, str):
                forms[name] = TimeForm("iso")
                break
            if isinstance(v, datetime):
                break
    return forms


# -- writing a member back in the shape it was found in ---------------------------------------------
TELEGRAM_ROLES = ("organizer", "member")


def written(member: Dict[str, Any], form: TimeForm) -> Dict[str, Any]:
    """A member entry tgsync creates, its times in the collection's form."""
    return {k: form.field(k, v) for k, v in member.items()}


def cas(club_id: str, raw: Dict[str, Any], new: Dict[str, Any], keys: Sequence[str], changed: bool,
        form: TimeForm) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """(filter, update, the entry as it will be stored) for a compare-and-set of one member.

    The filter re-checks every tgsync field as it was *stored* (raw: the app's string dates and
    string ids included); the update sets, positionally, only tgsync's fields that change, in the
    stored form. A field the app `$set` on the entry meanwhile (`city`) is neither guarded nor
    written, so it survives; a member the app `$pull`ed makes the filter miss."""
    current = read_member(raw)
    elem: Dict[str, Any] = {"telegram_id": raw.get("telegram_id")}
    for k in keys:
        elem[k] = raw.get(k)
    sets: Dict[str, Any] = {}
    stored = dict(raw)
    for k in keys:
        if new.get(k) != current.get(k) or k not in raw:
            v = form.field(k, new.get(k))
            sets[f"members.$.{k}"] = v
            stored[k] = v
    upd: Dict[str, Any] = {"$set": sets}
    if changed:
        upd["$inc"] = {"version": 1}
    return {"_id": club_id, "members": {"$elemMatch": elem}}, upd, stored


def app_role_kept(current: Optional[Dict[str, Any]], obs):
    """A role the app gave (`coach`) is the app's: a Telegram `member` status leaves it; only a
    promotion to admin (`organizer`) replaces it (and a later demotion makes a member again)."""
    import dataclasses

    if current is None or obs.role != "member":
        return obs
    role = current.get("role")
    if role is None or role in TELEGRAM_ROLES:
        return obs
    return dataclasses.replace(obs, role=None)


def is_null(field: str) -> List[Dict[str, Any]]:
    """`field` holds null itself (conditions for an `$and`). `{field: null}` alone also matches a
    missing field and an array with a null element (`members: ["x", null]`): setting such an
    array to [] would wipe the app's members."""
    return [{field: None}, {field: {"$exists": True}}, {field: {"$not": {"$type": "array"}}}]


# a `$push` into `members` works on an array or a missing field, never on a null (an `$or`)
PUSHABLE = [{"members": {"$type": "array"}}, {"members": {"$exists": False}}]


def null_containers(db) -> int:
    """A club with a Telegram group whose `members` or `sync` the app left null: MongoDB refuses
    to `$push` into or `$set` below a null, so they become an empty list / object (both are
    where tgsync's own data lives; nothing of the app's is in a null). Run by writing commands
    when they open the store; returns how many documents changed."""
    n = 0
    for field, empty in (("members", []), ("sync", {})):
        r = db["clubs"].update_many({"telegram_group_id": {"$ne": None}, "$and": is_null(field)},
                                    {"$set": {field: empty}})
        n += r.modified_count
    return n
