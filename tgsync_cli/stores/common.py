"""What every backend shares: ids, URI redaction and the round-trip counter."""

from __future__ import annotations

import uuid
from typing import Any, Dict

DEFAULT_DB = "ayda_run"
TOMBSTONE_DAYS = 7
FORGOTTEN_KEEP_SECONDS = 3600  # a forget note lives an hour: serves poll it every few seconds


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def redact_uri(uri: str) -> str:
    """mongodb://user:secret@host → mongodb://***@host: credentials never reach output."""
    if "://" in uri and "@" in uri.split("://", 1)[1]:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return uri


class Counted:
    """`ops` counts protocol calls that reach the database (one call, one round trip, as
    `simulate --json`'s db_ops reports)."""

    ops = 0
    uri_label = "store"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass


def member_doc(m: Dict[str, Any]) -> Dict[str, Any]:
    """A membership as SPEC §2 shows it: the seed's keys, the invite keys only when known."""
    from tgsync_cli.core.store import GUARD_KEYS, MEMBER_KEYS, OPTIONAL_MEMBER_KEYS

    out = {k: m.get(k) for k in MEMBER_KEYS}
    for k in GUARD_KEYS:
        if k in m:
            out[k] = m[k]
    for k in OPTIONAL_MEMBER_KEYS:
        if m.get(k) is not None:
            out[k] = m[k]
    return out
