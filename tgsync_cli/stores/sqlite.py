"""The embedded store on SQLite (`file:PATH`, the default, and `memory:`).

Relational inside (clubs, memberships, users, departures, membership_log), rendered as the MongoDB
documents on every read. Every protocol call is one transaction (inside a bulk writer's `batch()`,
one savepoint of a shared transaction: `sqlite_tx`) — BEGIN IMMEDIATE for writes, so
the write lock is taken before anything is read and the guards (`decide`) run on what no other
process can change under them (a bulk writer's batch decides its member observations before
taking the lock, and under it writes them only if the rows they rest on are as read:
`sqlite_plan`). WAL lets readers run beside the one writer; a second writer waits
its turn in sub-millisecond steps (`sqlite_busy.begin`) instead of failing, and checkpoints run on
a thread of their own (`sqlite_busy.Checkpointer`). So several processes (serve, a cron reconcile, an
admin's import) converge, and a member write costs O(1), whatever the club's size.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any, ContextManager, Dict, Iterable, Iterator, List, Optional, Tuple, cast

from tgsync_cli.core.documents import (
    ClubDoc,
    ClubIndexEntry,
    ClubRef,
    DepartureDoc,
    Documents,
    ForgetReport,
    MemberDoc,
    UserDoc,
)
from tgsync_cli.core.events import Person
from tgsync_cli.core.store import ClubIndex, forgotten_key
from tgsync_cli.stores.common import FORGOTTEN_KEEP_SECONDS, TOMBSTONE_DAYS, PartsStore, new_id
from tgsync_cli.stores.sqlite_busy import Checkpointer
from tgsync_cli.stores.sqlite_insights import SqliteInsights
from tgsync_cli.stores.sqlite_members import SqliteMembers, member_row, upsert_account
from tgsync_cli.stores.sqlite_requests import SqliteRequests
from tgsync_cli.stores.sqlite_tx import Transactions
from tgsync_cli.stores.sqlite_schema import (
    MEMBER_COLS,
    SCHEMA_VERSION,
    USER_COLS,
    dt_in,
    dt_out,
    sync_in,
    sync_out,
)



class SqliteStore(PartsStore):
    def __init__(self, conn: sqlite3.Connection, label: str, lock: threading.RLock, owns_conn: bool = True,
                 checkpointer: Optional[Checkpointer] = None):
        self.ops = 0
        self.uri_label = label
        self.atomic_listings = True  # a listing's write is one transaction: all of it or none
        self._conn = conn
        self._lock = lock
        self._closed = False
        self._owns_conn = owns_conn  # a shared `memory:NAME` connection outlives this store
        self._checkpointer = checkpointer  # a file store's WAL checkpoints, off the writers' path
        self._txs = Transactions(conn, label, lock, self._counted, self._forget_ledger)
        self._tx = self._txs.tx  # one transaction per protocol call, or a savepoint in a batch
        self._member_part = SqliteMembers(self._tx, self._txs.planned)
        self.members = self._member_part
        self.insights = SqliteInsights(self._tx)
        self.requests = SqliteRequests(self._tx)

    # -- transactions ----------------------------------------------------------------------------
    def _counted(self) -> None:
        self.ops += 1

    def _forget_ledger(self) -> None:
        """A batch rolled back: activity rows this process noted as written may not be."""
        self._member_part.forget_written()

    def batch(self) -> ContextManager[None]:
        """Several calls in one write transaction (`sqlite_tx.Transactions.batch`): for a bulk
        writer that can apply its events again after a crash."""
        return self._txs.batch()

    def try_write_lock(self) -> bool:
        """In a batch: write what it decided so far if no other writer holds the lock (True), or
        say at once that one does (False), so a bulk writer can decide further meanwhile."""
        return self._txs.try_lock()


    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._checkpointer is not None:
                self._checkpointer.stop()
            if self._owns_conn:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()

    def settle(self) -> None:
        """Nothing is ever deferred here: the log entry is in the change's transaction."""

    # -- clubs -----------------------------------------------------------------------------------
    def _club_doc(self, cur, row) -> ClubDoc:
        cid, gid, name, username, created_by, sync, prev, _version = row
        members = [member_row(r) for r in cur.execute(
            f"SELECT {', '.join(MEMBER_COLS)} FROM memberships WHERE club_id = ? ORDER BY seq", (cid,))]
        doc: ClubDoc = {"_id": cid, "name": name, "telegram_group_id": gid, "created_by": created_by,
                        "members": cast(List[MemberDoc], members), "sync": sync_out(sync)}
        prev = json.loads(prev or "[]")
        if prev:
            doc["previous_group_ids"] = prev
        if username:
            doc["username"] = username
        return doc

    _CLUB = "SELECT id, telegram_group_id, name, username, created_by, sync, previous_group_ids, version FROM clubs"

    def _club_id_for_group(self, cur, chat_id: int) -> Optional[str]:
        row = cur.execute("SELECT id FROM clubs WHERE telegram_group_id = ?", (chat_id,)).fetchone()
        if row is None:
            row = cur.execute("SELECT club_id FROM club_aliases WHERE old_group_id = ?", (chat_id,)).fetchone()
        return row[0] if row else None

    def _one_club(self, cur, where: str, arg) -> Optional[ClubDoc]:
        row = cur.execute(f"{self._CLUB} WHERE {where}", (arg,)).fetchone()
        return self._club_doc(cur, row) if row else None

    def club_by_group(self, chat_id: int) -> Optional[ClubDoc]:
        with self._tx("club_by_group", write=False) as cur:
            cid = self._club_id_for_group(cur, chat_id)
            return self._one_club(cur, "id = ?", cid) if cid else None

    def club_by_id(self, club_id: str) -> Optional[ClubDoc]:
        with self._tx("club_by_id", write=False) as cur:
            return self._one_club(cur, "id = ?", club_id)

    def club_by_username(self, username: str) -> Optional[ClubDoc]:
        with self._tx("club_by_username", write=False) as cur:
            return self._one_club(cur, "username = ? COLLATE NOCASE", username.lstrip("@"))

    def all_clubs(self) -> List[ClubDoc]:
        with self._tx("all_clubs", write=False) as cur:
            return self._all_clubs(cur)

    def _all_clubs(self, cur) -> List[ClubDoc]:
        rows = cur.execute(f"{self._CLUB} ORDER BY telegram_group_id").fetchall()
        return [self._club_doc(cur, r) for r in rows]

    def club_index(self, known: Optional[Dict[str, int]] = None) -> ClubIndex:
        """One query's worth: every club's map entry; active member ids only of the clubs whose
        version moved since `known` (a re-warm does not re-read unchanged clubs)."""
        with self._tx("club_index", write=False) as cur:
            rows = cur.execute(self._CLUB).fetchall()
            out = ClubIndex()
            changed: List[ClubIndexEntry] = []
            for cid, gid, name, username, _cb, sync, prev, version in rows:
                if known is not None and known.get(cid) == version:
                    continue
                changed.append({"_id": cid, "telegram_group_id": gid, "name": name, "username": username,
                                "previous_group_ids": json.loads(prev or "[]"),
                                "sync": sync_out(sync), "version": version, "active": []})
            by_id = {c["_id"]: c for c in changed}
            if by_id and (known is None or len(by_id) * 4 > len(rows)):
                q = cur.execute("SELECT club_id, telegram_id FROM memberships WHERE status = 'active'")
                for cid, tid in q:
                    c = by_id.get(cid)
                    if c is not None:
                        c["active"].append(tid)
            else:
                for cid, c in by_id.items():
                    c["active"] = [t for (t,) in cur.execute(
                        "SELECT telegram_id FROM memberships WHERE club_id = ? AND status = 'active'", (cid,))]
            out.clubs = changed
            if known:
                have = {r[0] for r in rows}
                out.removed = [cid for cid in known if cid not in have]
            return out

    def create_club(self, chat_id: int, name: str, created_by: Optional[str], sync: Dict[str, Any],
                    username: Optional[str] = None) -> Tuple[ClubDoc, bool]:
        with self._tx("create_club") as cur:
            cid = self._club_id_for_group(cur, chat_id)
            created = cid is None
            if created:
                cid = new_id("club")
                cur.execute("INSERT INTO clubs (id, telegram_group_id, name, username, created_by, sync)"
                            " VALUES (?, ?, ?, ?, ?, ?)",
                            (cid, chat_id, name, username, created_by, sync_in(dict(sync))))
            doc = self._one_club(cur, "id = ?", cid)
            assert doc is not None, "found or written in this transaction"
            return doc, created

    def update_sync(self, club_id: str, fields: Dict[str, Any], guard_at: Optional[datetime] = None) -> bool:
        """Set sync.* fields; with guard_at, only if sync.bot_status_at is not newer. True when the
        guard let the event through, even if nothing changed (a retried event must finish)."""
        with self._tx("update_sync") as cur:
            row = cur.execute("SELECT sync FROM clubs WHERE id = ?", (club_id,)).fetchone()
            if row is None:
                return False
            sync = sync_out(row[0])
            if guard_at is not None and sync.get("bot_status_at") is not None \
                    and sync["bot_status_at"] > guard_at:
                return False
            sync.update(fields)
            cur.execute("UPDATE clubs SET sync = ?, version = version + 1 WHERE id = ?",
                        (sync_in(sync), club_id))
            return True

    def claim_welcome(self, club_id: str, token: Optional[str] = None) -> bool:
        """True for the one caller who should post the welcome, and again for the same token: a
        retry whose first claim committed but whose reply was lost."""
        with self._tx("claim_welcome") as cur:
            row = cur.execute("SELECT sync FROM clubs WHERE id = ?", (club_id,)).fetchone()
            if row is None:
                return False
            sync = sync_out(row[0])
            if sync.get("welcome_posted") is True:
                return token is not None and sync.get("welcome_claim") == token
            sync["welcome_posted"] = True
            if token is not None:
                sync["welcome_claim"] = token
            cur.execute("UPDATE clubs SET sync = ? WHERE id = ?", (sync_in(sync), club_id))
            return True

    def release_welcome(self, club_id: str, token: Optional[str] = None) -> None:
        """The post did not happen: give the claim back, if it is still this token's."""
        self._settle_claim("release_welcome", club_id, token, posted=False)

    def confirm_welcome(self, club_id: str, token: str) -> None:
        """The post happened: the claim becomes final (welcome_posted stays true)."""
        self._settle_claim("confirm_welcome", club_id, token, posted=True)

    def _settle_claim(self, name: str, club_id: str, token: Optional[str], posted: bool) -> None:
        with self._tx(name) as cur:
            row = cur.execute("SELECT sync FROM clubs WHERE id = ?", (club_id,)).fetchone()
            if row is None:
                return
            sync = sync_out(row[0])
            if token is not None and sync.get("welcome_claim") != token:
                return  # another process's claim: not ours to settle
            sync.pop("welcome_claim", None)
            sync["welcome_posted"] = posted
            cur.execute("UPDATE clubs SET sync = ? WHERE id = ?", (sync_in(sync), club_id))

    def migrate_club(self, club_id: str, old_id: int, new_id_: int) -> None:
        with self._tx("migrate_club") as cur:
            row = cur.execute("SELECT previous_group_ids FROM clubs WHERE id = ?", (club_id,)).fetchone()
            if row is None:
                return
            prev = json.loads(row[0] or "[]")
            if old_id not in prev:
                prev.append(old_id)
            cur.execute("UPDATE clubs SET telegram_group_id = ?, previous_group_ids = ?, version = version + 1"
                        " WHERE id = ?", (new_id_, json.dumps(prev), club_id))
            cur.execute("INSERT OR REPLACE INTO club_aliases (old_group_id, club_id) VALUES (?, ?)",
                        (old_id, club_id))

    def set_club_username(self, club_id: str, username: Optional[str]) -> None:
        with self._tx("set_club_username") as cur:
            cur.execute("UPDATE clubs SET username = ? WHERE id = ?",
                        (username.lstrip("@") if username else None, club_id))

    # -- accounts --------------------------------------------------------------------------------
    def upsert_user(self, p: Person, at: datetime) -> str:
        with self._tx("upsert_user") as cur:
            return upsert_account(cur, p, at)

    @staticmethod
    def _user_doc(row) -> UserDoc:
        d = dict(zip(USER_COLS, row, strict=True))
        d["_id"] = d.pop("id")
        for k in ("created_at", "updated_at"):
            d[k] = dt_out(d[k])
        if d.get("dm_blocked") is None:
            d.pop("dm_blocked", None)
        else:
            d["dm_blocked"] = bool(d["dm_blocked"])
        return cast(UserDoc, d)

    def user_by_telegram_id(self, tid: int) -> Optional[UserDoc]:
        with self._tx("user_by_telegram_id", write=False) as cur:
            row = cur.execute(f"SELECT {', '.join(USER_COLS)} FROM users WHERE telegram_id = ?",
                              (tid,)).fetchone()
            return self._user_doc(row) if row else None

    def set_dm_blocked(self, tid: int, blocked: bool, at: datetime) -> bool:
        with self._tx("set_dm_blocked") as cur:
            return cur.execute("UPDATE users SET dm_blocked = ?, updated_at = max(coalesce(updated_at, ?), ?)"
                               " WHERE telegram_id = ?", (int(blocked), dt_in(at), dt_in(at), tid)).rowcount > 0

    # -- departures, log, erasure ----------------------------------------------------------------
    def departures_for(self, club_id: str, tids: Iterable[int]) -> Dict[int, DepartureDoc]:
        want = set(tids)
        with self._tx("departures_for", write=False) as cur:
            rows = cur.execute("SELECT telegram_id, status, at FROM departures WHERE club_id = ?", (club_id,))
            return {t: {"club_id": club_id, "telegram_id": t, "status": s, "at": dt_out(a)}
                    for t, s, a in rows if t in want}

    def prune_departures(self, now: datetime) -> int:
        with self._tx("prune_departures") as cur:
            return cur.execute("DELETE FROM departures WHERE at < ?",
                               (dt_in(now - timedelta(days=TOMBSTONE_DAYS)),)).rowcount

    def forget_preview(self, tid: int) -> ForgetReport:
        with self._tx("forget_preview", write=False) as cur:
            return self._preview(cur, tid)

    @staticmethod
    def _preview(cur, tid: int) -> ForgetReport:
        clubs: List[ClubRef] = [{"club_id": c, "name": n, "telegram_group_id": g} for c, n, g in cur.execute(
            "SELECT c.id, c.name, c.telegram_group_id FROM memberships m JOIN clubs c ON c.id = m.club_id"
            " WHERE m.telegram_id = ? ORDER BY m.seq", (tid,))]
        user = cur.execute("SELECT id FROM users WHERE telegram_id = ?", (tid,)).fetchone()
        deps = cur.execute("SELECT COUNT(*) FROM departures WHERE telegram_id = ?", (tid,)).fetchone()[0]
        created = 0
        if user:
            created = cur.execute("SELECT COUNT(*) FROM clubs WHERE created_by = ?", (user[0],)).fetchone()[0]
        return {"clubs": clubs, "accounts": 1 if user else 0, "departures": deps,
                "created_by_cleared": created}

    def forget(self, tid: int) -> ForgetReport:
        """One transaction: a writer beside it either ran before (and is erased) or after."""
        with self._tx("forget") as cur:
            rep = self._preview(cur, tid)
            user = cur.execute("SELECT id FROM users WHERE telegram_id = ?", (tid,)).fetchone()
            if user:
                cur.execute("UPDATE clubs SET created_by = NULL WHERE created_by = ?", (user[0],))
            cur.execute("UPDATE clubs SET version = version + 1 WHERE id IN"
                        " (SELECT club_id FROM memberships WHERE telegram_id = ?)", (tid,))
            cur.execute("DELETE FROM memberships WHERE telegram_id = ?", (tid,))
            cur.execute("DELETE FROM users WHERE telegram_id = ?", (tid,))
            cur.execute("DELETE FROM departures WHERE telegram_id = ?", (tid,))
            cur.execute("DELETE FROM membership_log WHERE telegram_id = ?", (tid,))
            cur.execute("DELETE FROM requests WHERE telegram_id = ?", (tid,))
            cur.execute("DELETE FROM activity WHERE telegram_id = ?", (tid,))
            cur.execute("UPDATE membership_log SET actor = NULL WHERE actor = ?", (tid,))
            cur.execute("UPDATE memberships SET invited_by = NULL WHERE invited_by = ?", (tid,))
            return rep

    def note_forgotten(self, tid: int, at: datetime) -> None:
        """Tell running serves that one person was erased (they poll `forgotten_since`). The note
        keeps no id: a salted hash and the time, pruned after an hour."""
        salt = uuid.uuid4().hex
        with self._tx("note_forgotten") as cur:
            cur.execute("DELETE FROM forgotten WHERE at < ?", (dt_in(at - timedelta(seconds=FORGOTTEN_KEEP_SECONDS)),))
            cur.execute("INSERT INTO forgotten (salt, key, at) VALUES (?, ?, ?)",
                        (salt, forgotten_key(salt, tid), dt_in(at)))

    def forgotten_since(self, at: Optional[datetime]) -> List[Tuple[str, str, datetime]]:
        with self._tx("forgotten_since", write=False) as cur:
            rows = cur.execute("SELECT salt, key, at FROM forgotten" + (" WHERE at > ?" if at else "")
                               + " ORDER BY at", (dt_in(at),) if at else ()).fetchall()
        return [(salt, key, dt_out(a)) for salt, key, a in rows]

    # -- whole store -------------------------------------------------------------------------------
    def counts(self) -> Dict[str, int]:
        with self._tx("counts", write=False) as cur:
            return {t: cur.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                    for t in ("clubs", "memberships", "users", "departures", "membership_log", "activity",
                              "reconciles")}

    def export(self) -> Documents:
        from tgsync_cli.stores.sqlite_copy import export_all

        return export_all(self)

    def export_chunks(self, chunk: int) -> Iterator[Tuple[str, List[dict]]]:
        from tgsync_cli.stores.sqlite_copy import export_chunks

        return export_chunks(self, chunk)

    def import_documents(self, docs: Dict[str, List[dict]]) -> Dict[str, int]:
        from tgsync_cli.stores.sqlite_copy import import_all

        return import_all(self, docs)

    def check(self) -> List[str]:
        """Problems a doctor should report (empty: the schema and its unique indexes are there)."""
        with self._tx("check", write=False) as cur:
            have = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type IN ('index', 'table')")}
            ver = cur.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        want = {"clubs", "memberships", "users", "departures", "membership_log", "club_aliases",
                "memberships_telegram_id", "departures_at", "log_club", "log_telegram_id", "activity",
                "reconciles"}
        problems = [f"missing {n}" for n in sorted(want - have)]
        if ver is None or int(ver[0]) > SCHEMA_VERSION:  # an older one: the next write upgrades it
            problems.append(f"schema version {ver[0] if ver else 'unknown'} (expected {SCHEMA_VERSION})")
        return problems
