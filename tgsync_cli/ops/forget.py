"""forget: erase one person from the store, the cache and serve's spool."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from tgsync_cli.core.errors import (
    InputError,
)
from tgsync_cli.runtime.pipeline import scrub_spool
from tgsync_cli.core.store import Store


@dataclass
class ForgetReport:
    telegram_id: int
    clubs: List[Dict[str, Any]] = field(default_factory=list)  # {club_id, name, telegram_group_id}
    accounts: int = 0
    departures: int = 0
    created_by_cleared: int = 0
    cache_entries: int = 0
    spooled_events: int = 0

    @property
    def found(self) -> bool:
        return bool(self.clubs or self.accounts or self.departures or self.created_by_cleared)

    def as_json(self) -> Dict[str, Any]:
        d = asdict(self)
        d["found"] = self.found
        return d


def forget_preview(store: Store, telegram_id: int) -> ForgetReport:
    """What `forget` would remove, read-only (shown before the confirmation)."""
    rep = ForgetReport(telegram_id)
    p = store.forget_preview(telegram_id)
    rep.clubs, rep.accounts = p["clubs"], p["accounts"]
    rep.departures, rep.created_by_cleared = p["departures"], p["created_by_cleared"]
    return rep


def forget(store: Store, cache, telegram_id: int, spool: Optional[Path] = None) -> ForgetReport:
    """Erase one person: memberships, account, departure records, cache entries, and the club's
    `created_by` link to their account (it would otherwise point at a person who is gone)."""
    if telegram_id <= 0:
        raise InputError(f"TELEGRAM_ID must be a positive user id (got {telegram_id})")
    removed = store.forget(telegram_id)  # one transaction: memberships, account, log, departures
    rep = ForgetReport(telegram_id)
    rep.clubs, rep.accounts = removed["clubs"], removed["accounts"]
    rep.departures, rep.created_by_cleared = removed["departures"], removed["created_by_cleared"]
    if cache is not None:
        for c in rep.clubs:
            if cache.is_active(c["club_id"], telegram_id):
                rep.cache_entries += 1
            cache.evict(c["club_id"], telegram_id)
    if spool is not None:  # events serve spooled at shutdown would bring them back
        rep.spooled_events = scrub_spool(spool, telegram_id)
    return rep


