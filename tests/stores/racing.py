"""A MongoDB that lets someone else write between a store's read and its compare-and-set.

mongomock runs one call at a time, so a guarded write never misses there by itself. `RacingDb`
wraps the database a `MongoStore` is given (its collections, not the Store protocol and not the
store's code): a `Race` names a collection method and a condition on its arguments, and the
first call that meets it first runs the racer (another store object on the same server, or "the
app" writing directly), then the call itself. Everything else passes through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import mongomock

from tgsync_cli.stores.mongo import MongoStore, open_mongo

DB = "race"


@dataclass
class Race:
    """Before the `nth` call of `collection.method` whose arguments satisfy `when`, run `racer`."""

    collection: str
    method: str
    racer: Callable[[], Any]
    when: Callable[..., bool] = lambda *a, **kw: True
    nth: int = 1
    seen: int = 0
    ran: bool = False

    def before(self, args: tuple, kwargs: dict) -> None:
        if self.ran or not self.when(*args, **kwargs):
            return
        self.seen += 1
        if self.seen == self.nth:
            self.ran = True
            self.racer()


@dataclass
class RacingDb:
    """The database as one store sees it: the real one, with the races put in its way."""

    db: Any
    races: List[Race] = field(default_factory=list)

    def __getitem__(self, name: str) -> "RacingCollection":
        return RacingCollection(self.db[name], name, self.races)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


class RacingCollection:
    def __init__(self, coll: Any, name: str, races: List[Race]) -> None:
        self._coll, self._name, self._races = coll, name, races

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._coll, method)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            for race in self._races:
                if race.collection == self._name and race.method == method:
                    race.before(args, kwargs)
            return target(*args, **kwargs)
        return call


class Server:
    """One mongomock server that several store objects (processes) share."""

    def __init__(self) -> None:
        self.client = mongomock.MongoClient()

    def store(self) -> MongoStore:
        """A process with nothing remembered."""
        return open_mongo("mongodb://mongomock", DB, client=self.client)

    def racing_store(self, *races: Race) -> MongoStore:
        """A process whose writes meet the given races."""
        store = MongoStore(RacingDb(self.client[DB], list(races)), "mongodb://mongomock/race")
        store.db.mock = True  # the wrapper hides mongomock's type: bulks go one by one as there
        store.ensure_indexes()
        return store

    def races_of(self, store: MongoStore) -> List[Race]:
        return store._db.races

    @property
    def raw(self) -> Any:
        """The database as the Ayda Run app reaches it."""
        return self.client[DB]


def track_night(store: MongoStore, chat: int) -> str:
    """The club a race story runs in (the bot present), as the stories' id."""
    return store.create_club(chat, "Track Night", None, {"bot_present": True})[0]["_id"]


def member_filter(tid: int) -> Callable[..., bool]:
    """A clubs update guarded on this member's element (a compare-and-set)."""
    def match(flt: Dict[str, Any], *a: Any, **kw: Any) -> bool:
        elem = (flt.get("members") or {}).get("$elemMatch") if isinstance(flt, dict) else None
        if not elem:
            return False
        want = elem.get("telegram_id")  # the id itself, or every form it may be stored in
        return want == tid or (isinstance(want, dict) and tid in (want.get("$in") or ()))
    return match


def pushes_member(tid: int) -> Callable[..., bool]:
    """A clubs update that `$push`es this member (a first sighting)."""
    def match(flt: Dict[str, Any], upd: Dict[str, Any], *a: Any, **kw: Any) -> bool:
        pushed: Optional[dict] = (upd.get("$push") or {}).get("members")
        return pushed is not None and pushed.get("telegram_id") == tid
    return match
