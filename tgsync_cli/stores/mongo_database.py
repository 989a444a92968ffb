"""Which database a `mongodb://` URI means: the one it names, as every MongoDB tool reads it.

`mongodb://host/ayda` is the database `ayda`; `store.database` (or `--database`) names one only
for a URI that names none, and naming a different one there too is a usage error: writing into
a database the app never reads would look like success and sync nothing."""

from __future__ import annotations

from typing import Optional
from urllib.parse import unquote

from tgsync_cli.core.errors import ConfigError
from tgsync_cli.stores.common import DEFAULT_DB, redact_uri


class DatabaseConflict(ConfigError):
    """The URI and an explicit setting name two databases: a usage error (exit 2)."""

    exit_code = 2


def uri_database(uri: str) -> Optional[str]:
    """The database a MongoDB URI names in its path, or None."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    if "@" in rest.split("/", 1)[0] or ("@" in rest and "/" in rest.rsplit("@", 1)[1]):
        rest = rest.rsplit("@", 1)[1]
    if "/" not in rest:
        return None
    name = unquote(rest.split("/", 1)[1]).strip()
    return name or None


def database_for(uri: str, explicit: Optional[str], where: str = "store.database") -> str:
    """The URI's database; else the explicit setting; else the default. A conflict raises."""
    named = uri_database(uri)
    if named is not None and explicit not in (None, "") and explicit != named:
        raise DatabaseConflict(f"{where} = {explicit!r} but the store URI {redact_uri(uri)} names the "
                               f"database {named!r}: drop one of them")
    return named or explicit or DEFAULT_DB
