"""forget: erase one person from the store, the cache, serve's spool (and its `.bad`), pyrogram's
session (peers/usernames), and from what a running `serve` still holds.

Why each place: the spool would re-apply their events at the next start; `.bad` keeps lines that
could not be read, which may still name them; pyrogram's session caches every peer the bot met
(id, access hash, username); and a running `serve` holds events in memory that it would apply
or spool after the erasure. That last one is reached through the store: `note_forgotten` records
the erasure, and every serve polls for it (runtime/pipeline.py) and drops what it holds.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from tgsync_cli.core.documents import ClubRef
from tgsync_cli.core.errors import InputError, TgsyncError
from tgsync_cli.core.store import Store
from tgsync_cli.runtime.spool import Spool, line_names, lines_of, scrub


@dataclass
class ForgetReport:
    telegram_id: int
    clubs: List[ClubRef] = field(default_factory=list)
    accounts: int = 0
    departures: int = 0
    created_by_cleared: int = 0
    app_account_kept: Optional[str] = None  # the app's account (its _id): only Telegram fields removed
    cache_entries: int = 0
    spooled_events: int = 0  # lines of the spool and of its .bad naming them
    session_entries: int = 0  # rows of pyrogram's session (peers, usernames)

    @property
    def found(self) -> bool:
        return bool(self.clubs or self.accounts or self.departures or self.created_by_cleared
                     or self.spooled_events or self.session_entries)

    def as_json(self) -> Dict[str, Any]:
        d = asdict(self)
        d["found"] = self.found
        return d


def forget_preview(store: Store, telegram_id: int, spool: Optional[Path] = None) -> ForgetReport:
    """What `forget` would remove, read-only (shown before the confirmation)."""
    rep = ForgetReport(telegram_id)
    p = store.forget_preview(telegram_id)
    rep.clubs, rep.accounts = p["clubs"], p["accounts"]
    rep.departures, rep.created_by_cleared = p["departures"], p["created_by_cleared"]
    rep.app_account_kept = p.get("app_account_kept")
    if spool is not None:
        rep.spooled_events = _count_spooled(Path(spool), telegram_id)
        rep.session_entries = sum(_session_rows(s, telegram_id, delete=False)
                                  for s in _sessions(Path(spool).parent))
    return rep


def forget(store: Store, cache, telegram_id: int, spool: Optional[Path] = None) -> ForgetReport:
    """Erase one person everywhere. The spool lives in the session directory, so `spool` also
    names where pyrogram's session files are. Files first: a store failure then leaves nothing
    on disk that a restart could re-apply, and running `forget` again finishes the store part."""
    if telegram_id <= 0:
        raise InputError(f"TELEGRAM_ID must be a positive user id (got {telegram_id})")
    rep = forget_preview(store, telegram_id, spool=spool)
    if spool is not None:
        rep.spooled_events = scrub(spool, telegram_id)
        rep.session_entries = sum(_session_rows(s, telegram_id, delete=True)
                                  for s in _sessions(Path(spool).parent))
    removed = store.forget(telegram_id)  # one transaction: memberships, account, log, departures
    rep.clubs, rep.accounts = removed["clubs"], removed["accounts"]
    rep.departures, rep.created_by_cleared = removed["departures"], removed["created_by_cleared"]
    rep.app_account_kept = removed.get("app_account_kept")
    store.note_forgotten(telegram_id, datetime.now(timezone.utc).replace(tzinfo=None))
    if cache is not None:
        for c in rep.clubs:
            if cache.is_active(c["club_id"], telegram_id):
                rep.cache_entries += 1
            cache.evict(c["club_id"], telegram_id)
    return rep


def tell_running_serves(store: Store, telegram_id: int) -> None:
    """Nothing stored, but a running `serve` may hold their events in memory (the store was down
    for it): the note makes it drop them, so "nothing stored" stays true."""
    if telegram_id > 0:
        store.note_forgotten(telegram_id, datetime.now(timezone.utc).replace(tzinfo=None))


def _count_spooled(spool: Path, telegram_id: int) -> int:
    n = 0
    for path, readable in ((spool, True), (Spool(spool).bad_path, False)):
        if not path.exists():
            continue
        for line in lines_of(path.read_bytes()):
            if line.strip():
                n += line_names(line, telegram_id, readable)
    return n


def _sessions(directory: Path) -> List[Path]:
    return sorted(directory.glob("*.session")) if directory.is_dir() else []


def _session_rows(session: Path, telegram_id: int, delete: bool) -> int:
    """pyrogram's peer cache: `peers` (id, access hash, phone) and `usernames`. Deleted with
    secure_delete, so the freed pages are overwritten rather than left in the file."""
    try:
        db = sqlite3.connect(session, timeout=30)
    except sqlite3.Error as exc:
        raise TgsyncError(f"{session}: cannot open pyrogram's session ({exc})") from None
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        n = 0
        with db:
            if delete:
                db.execute("PRAGMA secure_delete = ON")
            for table in ("usernames", "peers"):
                if table not in tables:
                    continue
                if delete:
                    n += db.execute(f"DELETE FROM {table} WHERE id = ?", (telegram_id,)).rowcount
                else:
                    n += db.execute(f"SELECT COUNT(*) FROM {table} WHERE id = ?", (telegram_id,)).fetchone()[0]
        return n
    except sqlite3.Error as exc:
        raise TgsyncError(f"{session}: pyrogram's session could not be cleaned ({exc})") from None
    finally:
        db.close()
