"""Backends of the core's store protocol (`tgsync_cli.core.store.Store`).

`open_store(uri)` picks one by URI: `mongodb://`/`mongodb+srv://` (MongoDB, the seed's documents),
`file:PATH` (SQLite on disk, the default) and `memory:` (SQLite in this process)."""

from __future__ import annotations

from typing import Optional

from tgsync_cli.core.errors import ConfigError
from tgsync_cli.stores.common import DEFAULT_DB, new_id, redact_uri


def open_store(uri: str, database: Optional[str] = None, *, create: bool = True, time_format: str = "auto"):
    """With `create=False` (read-only commands) a missing store is a StoreError naming the URI,
    and nothing is created; a damaged one is a one-line StoreError naming URI and cause.
    `database`: the MongoDB database when the URI names none (a different one is refused), the
    embedded store's file name; None means the URI's own, else the default."""
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        from tgsync_cli.stores.mongo import open_mongo

        return open_mongo(uri, database, create=create, time_format=time_format)
    database = database or DEFAULT_DB
    if uri.startswith(("file:", "memory:")):
        from tgsync_cli.stores.sqlite import SqliteStore
        from tgsync_cli.stores.sqlite_schema import connect

        conn, lock, label, owns = connect(uri, database, create)
        checkpointer = None
        if owns and uri.startswith("file:"):  # WAL checkpoints off the writers' path
            from tgsync_cli.stores.sqlite_busy import start_checkpointer

            checkpointer = start_checkpointer(conn)
        return SqliteStore(conn, label, lock, owns_conn=owns, checkpointer=checkpointer)
    raise ConfigError("store.uri must start with mongodb://, mongodb+srv://, file: or be memory: "
                      f"(got {redact_uri(uri)!r})")


__all__ = ["DEFAULT_DB", "new_id", "open_store", "redact_uri"]
