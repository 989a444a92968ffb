"""What `history`, `member` and `stats` read from the embedded store: the membership log, writers
per ISO week (kept by the last_seen flush), reconcile figures, and one person's memberships."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional, cast

from tgsync_cli.core.documents import LogEntry, MembershipOf, ReconcileRecord
from tgsync_cli.stores.sqlite_members import Tx, member_row
from tgsync_cli.stores.sqlite_schema import MEMBER_COLS, dt_in, dt_out

LOG_COLS = ("club_id, telegram_id, at, from_status, from_role, to_status, to_role, source, actor,"
            " invite_link, invited_by")


class SqliteInsights:
    """Given the store's transactions (`tx(name, write=True)`): one transaction per call."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def membership_log(self, club_id: Optional[str] = None, telegram_id: Optional[int] = None,
                       since: Optional[datetime] = None) -> List[LogEntry]:
        where, args = [], []
        for col, op, val in (("club_id", "=", club_id), ("telegram_id", "=", telegram_id),
                             ("at", ">=", dt_in(since))):
            if val is not None:
                where.append(f"{col} {op} ?")
                args.append(val)
        sql = (f"SELECT {LOG_COLS} FROM membership_log" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY seq")
        with self._tx("membership_log", write=False) as cur:
            return self._log(cur, sql, args)

    @staticmethod
    def _log(cur, sql: str, args) -> List[LogEntry]:
        return [{"club_id": c, "telegram_id": t, "at": dt_out(a),
                 "from": None if fs is None and fr is None else {"status": fs, "role": fr},
                 "to": {"status": ts, "role": tr}, "source": s, "actor": ac, "invite_link": il,
                 "invited_by": ib}
                for c, t, a, fs, fr, ts, tr, s, ac, il, ib in cur.execute(sql, args)]

    def writers_by_week(self, club_id: str) -> Dict[str, int]:
        with self._tx("writers_by_week", write=False) as cur:
            return dict(cur.execute("SELECT week, COUNT(*) FROM activity WHERE club_id = ? GROUP BY week",
                                    (club_id,)).fetchall())

    def record_reconcile(self, club_id: str, at: datetime, telegram: Optional[int], active: int,
                         drift: Optional[int]) -> None:
        with self._tx("record_reconcile") as cur:
            cur.execute("INSERT INTO reconciles (club_id, at, telegram, active, drift) VALUES (?, ?, ?, ?, ?)",
                        (club_id, dt_in(at), telegram, active, drift))

    def reconcile_history(self, club_id: str) -> List[ReconcileRecord]:
        with self._tx("reconcile_history", write=False) as cur:
            return [{"club_id": club_id, "at": dt_out(a), "total_members_telegram": t, "active": n, "drift": d}
                    for a, t, n, d in cur.execute("SELECT at, telegram, active, drift FROM reconciles"
                                                  " WHERE club_id = ? ORDER BY at, seq", (club_id,))]

    def memberships_of(self, tid: int) -> List[MembershipOf]:
        cols = ", ".join(f"m.{c}" for c in MEMBER_COLS)
        with self._tx("memberships_of", write=False) as cur:
            rows = cur.execute(f"SELECT c.id, c.name, c.telegram_group_id, {cols} FROM memberships m"
                               " JOIN clubs c ON c.id = m.club_id WHERE m.telegram_id = ? ORDER BY m.seq",
                               (tid,)).fetchall()
        out: List[MembershipOf] = []
        for cid, name, gid, *vals in rows:
            m: Dict[str, Any] = member_row(vals)
            m.update({"club_id": cid, "club_name": name, "telegram_group_id": gid})
            out.append(cast(MembershipOf, m))
        return out
