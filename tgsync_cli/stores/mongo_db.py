"""The MongoDB database as the store reaches it: its collections, and every round trip counted
(`ops`, what `simulate --json`'s db_ops reports) and turned into the store's typed errors: a
lost unique-key race is `StoreConflict`, anything else the driver raises `StoreUnavailable`."""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Tuple

from tgsync_cli.core.errors import StoreConflict, StoreUnavailable
from tgsync_cli.stores.common import doing


class MongoDb:
    def __init__(self, db: Any, label: str) -> None:
        self.ops = 0
        self.uri_label = label
        self.mock = type(db).__module__.startswith("mongomock")
        self.clubs, self.users = db["clubs"], db["users"]
        self.log, self.departures = db["membership_log"], db["departures"]
        self.activity, self.reconciles = db["activity"], db["reconciles"]
        self.forgotten = db["forgotten"]
        self.requests = db["requests"]  # tgsync's own: what the app asks, join requests answered
        # how times are written per collection: the app's form, found at open (mongo_shapes.detect)
        from tgsync_cli.stores.mongo_shapes import TimeForm

        self.forms: Dict[str, TimeForm] = {"clubs": TimeForm("date"), "users": TimeForm("date")}

    def call(self, name: str, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        from pymongo.errors import DuplicateKeyError, PyMongoError

        self.ops += 1
        try:
            result = fn(*a, **kw)
        except DuplicateKeyError as exc:
            raise StoreConflict(f"{self.uri_label}: {doing(name)} lost a race ({cause(exc)})") from exc
        except (PyMongoError, OSError) as exc:
            raise StoreUnavailable(f"{self.uri_label}: {doing(name)} failed ({cause(exc)})") from exc
        return result

    def fields(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """A projection as the database can run it. mongomock fails on a path into `members`
        when the app left a non-document there (`"garbage"`, a number); MongoDB skips those
        elements. On mongomock the whole `members` array is read instead."""
        if not self.mock:
            return spec
        out = {k: v for k, v in spec.items() if not k.startswith("members.")}
        if len(out) != len(spec):
            out["members"] = 1
        return out

    def bulk(self, name: str, coll: Any, ops: List[Tuple[dict, dict, bool]]) -> int:
        """One round trip; returns how many ops matched. mongomock applies them one by one."""
        if not ops:
            return 0
        if self.mock:
            def run() -> int:
                n = 0
                for f, u, up in ops:
                    n += coll.update_one(f, u, upsert=up).matched_count
                return n
            return self.call(name, run)
        from pymongo import UpdateOne

        r = self.call(name, coll.bulk_write, [UpdateOne(f, u, upsert=up) for f, u, up in ops], ordered=True)
        return r.matched_count


def cause(exc: BaseException, limit: int = 160) -> str:
    """The driver's reason in one bounded line, credentials scrubbed: "connection refused" says
    more to an operator than ServerSelectionTimeoutError alone."""
    text = " ".join(str(exc).split())
    text = text.split(", Timeout:")[0].split(" (configured timeouts")[0]
    text = re.sub(r"//[^@/\s]*@", "//***@", text)
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
