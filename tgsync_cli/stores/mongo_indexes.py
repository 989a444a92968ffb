"""tgsync's indexes in a MongoDB database it may share with the Ayda Run app.

The app keeps clubs with no Telegram group yet and accounts with no Telegram id. MongoDB indexes
a missing field as null, so a plain unique index on `telegram_group_id` or `telegram_id` cannot
even be built on such a database. Ours are *partial*: unique only where the field exists as a
number (`$type: "number"`), which leaves the app's documents out of the index entirely (and a
query must name a number for the planner to use it, which tgsync's lookups do).

Nothing here drops an index, and indexes on the app's collections are made only by `tgsync store
init` (or on a database with no collections yet: one tgsync is creating). An index the app
already has on the same keys with other options is reported, never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

NUMBER = {"$type": "number"}
Keys = Tuple[Tuple[str, int], ...]


@dataclass(frozen=True)
class Want:
    collection: str
    keys: Keys
    unique: bool = False
    partial: Optional[Dict[str, Any]] = None

    @property
    def label(self) -> str:
        return f"{self.collection}.{'+'.join(k for k, _ in self.keys)}"

    def options(self) -> Dict[str, Any]:
        opts: Dict[str, Any] = {}
        if self.unique:
            opts["unique"] = True
        if self.partial is not None:
            opts["partialFilterExpression"] = self.partial
        return opts

    def describe(self) -> str:
        if self.partial is not None:
            return f"{self.label} (unique where it is a number)"
        return f"{self.label}{' (unique)' if self.unique else ''}"


def _k(*names: str) -> Keys:
    return tuple((n, 1) for n in names)


# the app's collections first: these are the ones `store init` must be asked for
APP_COLLECTIONS = ("clubs", "users")
WANTED: Sequence[Want] = (
    Want("clubs", _k("telegram_group_id"), unique=True, partial={"telegram_group_id": NUMBER}),
    Want("clubs", _k("previous_group_ids")),
    Want("clubs", _k("username")),
    Want("clubs", _k("members.telegram_id")),
    Want("users", _k("telegram_id"), unique=True, partial={"telegram_id": NUMBER}),
    Want("departures", _k("club_id", "telegram_id"), unique=True),
    Want("departures", _k("at")),
    Want("membership_log", _k("club_id", "at")),
    Want("membership_log", _k("telegram_id")),
    Want("activity", _k("club_id", "week", "telegram_id"), unique=True),
    Want("activity", _k("telegram_id")),
    Want("reconciles", _k("club_id", "at")),
    Want("forgotten", _k("at")),
    Want("requests", _k("state", "at")),
    Want("requests", _k("club_id", "telegram_id")),
)


@dataclass
class IndexState:
    want: Want
    state: str  # present | created | missing | differs | failed
    detail: str = ""


def _existing(db, name: str) -> Dict[Keys, Dict[str, Any]]:
    info = db[name].index_information()
    return {tuple((k, int(d) if isinstance(d, (int, float)) else d) for k, d in spec["key"]): {**spec, "name": name}
            for name, spec in info.items()}


def _compare(want: Want, spec: Dict[str, Any]) -> Tuple[str, str]:
    """(present | differs | weaker, what differs). `weaker`: the keys are there but the index
    does not enforce what tgsync relies on (uniqueness)."""
    unique = bool(spec.get("unique"))
    partial = spec.get("partialFilterExpression")
    if unique == want.unique and partial == want.partial:
        return "present", ""
    bits = []
    if unique != want.unique:
        bits.append("unique" if unique else "not unique")
    if partial != want.partial:
        bits.append(f"partial filter {partial!r}" if partial else "not partial")
    if want.unique and not unique:
        return "weaker", ", ".join(bits)
    return "differs", ", ".join(bits)


def inspect(db) -> List[IndexState]:
    """What is there, without creating anything."""
    out: List[IndexState] = []
    cache: Dict[str, Dict[Keys, Dict[str, Any]]] = {}
    for want in WANTED:
        if want.collection not in cache:
            cache[want.collection] = _existing(db, want.collection)
        spec = cache[want.collection].get(want.keys)
        if spec is None:
            out.append(IndexState(want, "missing"))
            continue
        state, detail = _compare(want, spec)
        out.append(IndexState(want, "missing" if state == "weaker" else state,
                              f"an index {spec.get('name', '')!s} on these keys exists: {detail}" if detail else ""))
    return out


def ensure(db, only: Optional[Sequence[str]] = None) -> List[IndexState]:
    """Create what is missing (in `only` collections, or all); idempotent; never drops or
    replaces an index. A build refused by the data (duplicates) is `failed`, with the cause."""
    from pymongo.errors import PyMongoError

    out: List[IndexState] = []
    for st in inspect(db):
        if st.state != "missing" or (only is not None and st.want.collection not in only):
            out.append(st)
            continue
        if st.detail:  # same keys, weaker options: creating would conflict; report it
            out.append(IndexState(st.want, "differs", st.detail))
            continue
        try:
            db[st.want.collection].create_index(list(st.want.keys), **st.want.options())
            out.append(IndexState(st.want, "created"))
        except PyMongoError as exc:
            reason = " ".join(str(exc).split())[:200]
            out.append(IndexState(st.want, "failed", f"{type(exc).__name__}: {reason}"))
    return out


def missing_unique(db) -> List[str]:
    """The unique indexes tgsync's writes rely on that are not there (labels)."""
    return [st.want.label for st in inspect(db) if st.want.unique and st.state == "missing"]


def is_fresh(db) -> bool:
    """A database with none of the app's collections: tgsync is creating it."""
    names = set(db.list_collection_names())
    return not names & set(APP_COLLECTIONS)
