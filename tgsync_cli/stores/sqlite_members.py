"""The SQLite store's member writes: observations and listings decided by `core.evidence.decide`
inside one transaction, and the set-based last_seen flush. A part SqliteStore holds."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any, Callable, ContextManager, Dict, List, Optional, Sequence, Tuple

from tgsync_cli.core.events import Person
from tgsync_cli.core.store import account_fields
from tgsync_cli.stores.common import member_doc, new_id
from tgsync_cli.core.evidence import AFTER_MESSAGES, MESSAGES, Observation, Outcome, decide
from tgsync_cli.core.insights import iso_week
from tgsync_cli.stores.sqlite_schema import MEMBER_COLS, dt_in, dt_out

_TIMES = ("joined_at", "last_seen", "status_at", "role_at", "hard_at", "proof_at")


def member_row(r: Sequence[Any], raw: bool = False) -> Dict[str, Any]:
    """A memberships row as the document shows it (`raw`: with this store's guard fields)."""
    m = dict(zip(MEMBER_COLS, r))
    for k in _TIMES:
        m[k] = dt_out(m[k])
    return m if raw else member_doc(m)


def upsert_account(cur: sqlite3.Cursor, p: Person, at: datetime, keep_names: bool = False) -> str:
    """The account of a person a membership is created for: names kept when asked."""
    f = account_fields(p, at)
    uid = new_id("user")
    if keep_names:
        cur.execute("INSERT INTO users (id, telegram_id, username, first_name, last_name, language_code,"
                    " created_at, updated_at) VALUES (?, ?, NULL, ?, NULL, NULL, ?, ?)"
                    " ON CONFLICT(telegram_id) DO NOTHING",
                    (uid, p.id, p.first_name, dt_in(at), dt_in(at)))
    else:
        cur.execute("INSERT INTO users (id, telegram_id, username, first_name, last_name, language_code,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(telegram_id) DO UPDATE SET username = excluded.username,"
                    " first_name = excluded.first_name, last_name = excluded.last_name,"
                    " language_code = excluded.language_code, updated_at = excluded.updated_at",
                    (uid, p.id, f["username"], f["first_name"], f["last_name"], f["language_code"],
                     dt_in(at), dt_in(at)))
    return cur.execute("SELECT id FROM users WHERE telegram_id = ?", (p.id,)).fetchone()[0]


Tx = Callable[..., ContextManager[sqlite3.Cursor]]


class SqliteMembers:
    """Given the store's transactions (`tx(name, write=True)`): one transaction per call."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def member(self, club_id: str, tid: int) -> Optional[dict]:
        with self._tx("member", write=False) as cur:
            return self._member(cur, club_id, tid)

    def _member(self, cur, club_id: str, tid: int, raw: bool = False) -> Optional[dict]:
        row = cur.execute(f"SELECT {', '.join(MEMBER_COLS)} FROM memberships WHERE club_id = ? AND telegram_id = ?",
                          (club_id, tid)).fetchone()
        return member_row(row, raw) if row else None

    def _departure(self, cur, club_id: str, tid: int) -> Optional[dict]:
        row = cur.execute("SELECT status, at FROM departures WHERE club_id = ? AND telegram_id = ?",
                          (club_id, tid)).fetchone()
        return {"status": row[0], "at": dt_out(row[1])} if row else None

    def _apply(self, cur, club_id: str, obs: Observation) -> Outcome:
        tid = obs.person.id
        current = self._member(cur, club_id, tid, raw=True)
        dep = self._departure(cur, club_id, tid) if current is None else None
        d = decide(club_id, current, dep, obs)
        if d.departure is not None:
            cur.execute("INSERT INTO departures (club_id, telegram_id, status, at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT(club_id, telegram_id) DO UPDATE SET status = excluded.status,"
                        " at = excluded.at WHERE departures.at <= excluded.at",
                        (club_id, tid, d.departure["status"], dt_in(d.departure["at"])))
        if d.member is not None:
            m = dict(d.member)
            if d.account:
                m["user_id"] = upsert_account(cur, obs.person, obs.at, obs.keep_names)
            vals = [dt_in(m.get(c)) if c in _TIMES else m.get(c) for c in MEMBER_COLS]
            if current is None:
                cur.execute(f"INSERT INTO memberships (club_id, {', '.join(MEMBER_COLS)}) VALUES "
                            f"(?, {', '.join('?' * len(MEMBER_COLS))})", [club_id, *vals])
            else:
                sets = ", ".join(f"{c} = ?" for c in MEMBER_COLS)
                cur.execute(f"UPDATE memberships SET {sets} WHERE club_id = ? AND telegram_id = ?",
                            [*vals, club_id, tid])
        if d.clear_departure:
            cur.execute("DELETE FROM departures WHERE club_id = ? AND telegram_id = ?", (club_id, tid))
        if d.log is not None:
            lg = d.log
            fr = lg["from"] or {}
            cur.execute("INSERT INTO membership_log (club_id, telegram_id, at, from_status, from_role,"
                        " to_status, to_role, source, actor, invite_link, invited_by)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (club_id, tid, dt_in(lg["at"]), fr.get("status"), fr.get("role"),
                         lg["to"]["status"], lg["to"]["role"], lg["source"], lg["actor"], lg["invite_link"],
                         lg.get("invited_by")))
        if d.outcome.changed:
            cur.execute("UPDATE clubs SET version = version + 1 WHERE id = ?", (club_id,))
        return d.outcome

    def observe(self, club_id: str, obs: Observation) -> Outcome:
        """One transaction: account upsert (if a membership is created), guarded membership
        write, departure note, log entry. A new member costs this one round trip."""
        with self._tx("observe") as cur:
            return self._apply(cur, club_id, obs)

    def observe_many(self, club_id: str, observations: Sequence[Observation],
                     complete_at: Optional[datetime] = None, complete_source: str = "member_import"
                     ) -> List[Outcome]:
        """A listing in one transaction; with `complete_at`, active members it does not name are
        observed as `left` at that time (their outcomes are appended)."""
        with self._tx("observe_many") as cur:
            outs = []
            for obs in observations:
                outs.append(self._apply(cur, club_id, obs))
            if complete_at is not None:
                listed = {o.person.id for o in observations}
                gone = [t for (t,) in cur.execute(
                    "SELECT telegram_id FROM memberships WHERE club_id = ? AND status = 'active'", (club_id,))
                    if t not in listed]
                for tid in gone:
                    outs.append(self._apply(cur, club_id, Observation(
                        Person(tid), "left", "member", complete_at, complete_source, create=False)))
            return outs

    def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime],
                        first_seen: Optional[Dict[Tuple[str, int], datetime]] = None,
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None) -> int:
        """One transaction, one indexed update per member that wrote: O(members changed), never
        backwards. `first_seen` is message evidence for `source`/`joined_at` (SPEC §2)."""
        if not seen and not first_seen:
            return 0
        first_seen, active_since = first_seen or {}, active_since or {}
        rows: List[Tuple[Any, ...]] = []
        weeks: Dict[Any, Optional[str]] = {}

        def week(at):  # a flush holds a few days at most: one isocalendar per day, not per member
            if at is None:
                return None
            d = at.date()
            w = weeks.get(d)
            if w is None:
                w = weeks[d] = iso_week(at)
            return w

        for key in set(seen) | set(first_seen):
            last, first, since = seen.get(key), first_seen.get(key), active_since.get(key)
            wl, wf = week(last), week(first)
            rows.append((key[0], key[1], dt_in(first), dt_in(last), dt_in(since),
                         None if wf == wl else wf, wl))
        with self._tx("flush_last_seen") as cur:
            # the batch goes into a temporary table, then set-based statements join it to
            # memberships by primary key: per member one insert, whatever the club's size
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS flush_batch (club_id TEXT, telegram_id INTEGER,"
                        " first TEXT, last TEXT, since TEXT, wk_first TEXT, wk_last TEXT,"
                        " PRIMARY KEY (club_id, telegram_id)) WITHOUT ROWID")
            cur.execute("DELETE FROM flush_batch")
            cur.executemany("INSERT INTO flush_batch VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            # who wrote in which ISO week (stats' active writers): ids per week, nothing more
            cur.execute("INSERT OR IGNORE INTO activity (club_id, week, telegram_id)"
                        " SELECT club_id, wk_last, telegram_id FROM flush_batch WHERE wk_last IS NOT NULL"
                        " UNION ALL SELECT club_id, wk_first, telegram_id FROM flush_batch WHERE wk_first IS NOT NULL")
            # one pass: last_seen and proof_at only forwards; joined_at/source by the earliest
            # evidence (SPEC §2); a member active by messages alone is active since the earliest
            # one after their last member event, whichever message reached the store first
            after = ", ".join(f"'{r}'" for r in AFTER_MESSAGES)
            earlier = ("k.first IS NOT NULL AND (m.joined_at IS NULL OR m.joined_at > k.first OR (m.joined_at = k.first"
                       f" AND m.source IN ({after})))")
            cur.execute(
                "UPDATE memberships AS m SET"
                " last_seen = CASE WHEN k.last IS NOT NULL AND (m.last_seen IS NULL OR m.last_seen < k.last)"
                " THEN k.last ELSE m.last_seen END,"
                " proof_at = CASE WHEN k.last IS NOT NULL AND (m.proof_at IS NULL OR m.proof_at < k.last)"
                " THEN k.last ELSE m.proof_at END,"
                f" joined_at = CASE WHEN {earlier} THEN k.first ELSE m.joined_at END,"
                f" source = CASE WHEN {earlier} THEN '{MESSAGES}' ELSE m.source END,"
                " status_at = CASE WHEN k.since IS NOT NULL AND m.status = 'active' AND m.status_at > k.since"
                " AND (m.hard_at IS NULL OR (m.status_at > m.hard_at AND k.since > m.hard_at))"
                " THEN k.since ELSE m.status_at END"
                " FROM flush_batch AS k WHERE m.club_id = k.club_id AND m.telegram_id = k.telegram_id"
                # (the IN makes SQLite walk the batch and probe memberships by key, never scan them)
                " AND (m.club_id, m.telegram_id) IN (SELECT club_id, telegram_id FROM flush_batch)")
            back = cur.execute(
                "SELECT m.club_id, m.telegram_id, COALESCE(k.first, k.last), k.last FROM flush_batch k CROSS JOIN memberships m"
                " ON m.club_id = k.club_id AND m.telegram_id = k.telegram_id WHERE k.last IS NOT NULL"
                " AND m.status <> 'active' AND (m.hard_at IS NULL OR m.hard_at < k.last)").fetchall()
            if back:
                self._reactivate(cur, {(c, t): dt_out(last) for c, t, _f, last in back},
                                 {(c, t): dt_out(first) for c, t, first, _l in back})
        return len(seen)

    @staticmethod
    def _reactivate(cur, seen, first_seen) -> None:
        """A message newer than the member event that made someone inactive proves them back
        (SPEC §3), also when another process applied that event while this one had the member
        cached: the message never reached the store until now."""
        for (cid, tid), last in seen.items():
            first = dt_in(first_seen.get((cid, tid), last))
            last_s = dt_in(last)
            row = cur.execute(
                "UPDATE memberships SET status = 'active',"
                " status_at = CASE WHEN hard_at IS NULL OR hard_at < ? THEN ? ELSE ? END,"
                " proof_at = CASE WHEN proof_at IS NULL OR proof_at < ? THEN ? ELSE proof_at END"
                " WHERE club_id = ? AND telegram_id = ? AND status <> 'active'"
                " AND (hard_at IS NULL OR hard_at < ?) RETURNING status_at, role",
                (first, first, last_s, last_s, last_s, cid, tid, last_s)).fetchone()
            if row is None:
                continue
            cur.execute("INSERT INTO membership_log (club_id, telegram_id, at, from_status, from_role,"
                        " to_status, to_role, source, actor, invite_link)"
                        f" SELECT ?, ?, ?, d.from_status, ?, 'active', ?, '{MESSAGES}', NULL, NULL"
                        " FROM (SELECT to_status AS from_status FROM membership_log WHERE club_id = ?"
                        " AND telegram_id = ? ORDER BY seq DESC LIMIT 1) d",
                        (cid, tid, row[0], row[1], row[1], cid, tid))
            cur.execute("UPDATE clubs SET version = version + 1 WHERE id = ?", (cid,))

    def app_only_active(self, club_id: str) -> int:
        """The embedded store holds Telegram members only."""
        return 0

    def active_count(self, club_id: str) -> int:
        with self._tx("active_count", write=False) as cur:
            return cur.execute("SELECT COUNT(*) FROM memberships WHERE club_id = ? AND status = 'active'",
                               (club_id,)).fetchone()[0]
