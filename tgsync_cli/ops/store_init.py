"""`tgsync store init`: tgsync's indexes in a MongoDB database, made once and on purpose.

A database the Ayda Run app already uses gets indexes only when an operator asks, because an
index build touches every document of the app's collections and a unique one can be refused by
the app's data. Running it again creates nothing; an index the app made on the same keys with
other options is reported and left as it is (tgsync never drops an index)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from tgsync_cli.core.errors import StoreError
from tgsync_cli.stores import open_store


@dataclass
class InitReport:
    store: str
    database: Optional[str]
    rows: List[Dict[str, str]] = field(default_factory=list)  # {index, state, detail}
    embedded: bool = False

    @property
    def created(self) -> List[str]:
        return [r["index"] for r in self.rows if r["state"] == "created"]

    @property
    def failed(self) -> List[Dict[str, str]]:
        return [r for r in self.rows if r["state"] == "failed"]

    def as_json(self) -> Dict[str, object]:
        return {"store": self.store, "database": self.database, "embedded": self.embedded,
                "indexes": self.rows, "created": self.created}


def init_store(uri: str, database: Optional[str], time_format: str = "auto") -> InitReport:
    """Create what is missing and say what was there. An embedded store has its own schema: it is
    created (like any writing command would) and that is all."""
    from tgsync_cli.stores.mongo_indexes import ensure

    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        with open_store(uri, database, create=True) as st:
            return InitReport(st.uri_label, None, embedded=True)
    with open_store(uri, database, create=False, time_format=time_format) as st:
        try:
            states = st._call("store_init", ensure, st._db)
        except StoreError:
            raise
        rep = InitReport(st.uri_label, st._db.name)
        for s in states:
            rep.rows.append({"index": s.want.describe(), "state": s.state, "detail": s.detail})
        return rep
