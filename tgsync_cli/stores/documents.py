"""Kept for imports written before the store protocol moved to `core/store.py` and the backends
to `stores/sqlite.py` and `stores/mongo.py`: the same names, from where they live now."""

from tgsync_cli.core.store import Store
from tgsync_cli.stores import DEFAULT_DB, new_id, open_store, redact_uri

__all__ = ["DEFAULT_DB", "Store", "new_id", "open_store", "redact_uri"]
