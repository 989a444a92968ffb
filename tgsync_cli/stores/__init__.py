"""Backends of the core's store protocol (`tgsync_cli.core.store.Store`).

`open_store(uri)` picks one by URI: `mongodb://`/`mongodb+srv://` (MongoDB), `file:PATH` and
`memory:` (embedded)."""

from tgsync_cli.stores.documents import Store, new_id, open_store, redact_uri

__all__ = ["Store", "new_id", "open_store", "redact_uri"]
