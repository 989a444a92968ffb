"""The last_seen flush as it was before plain batched updates: the baseline `--scale` times the
current flush against, in the same run on the same store (a copy of the old code, kept only here)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Dict, List, Optional, Tuple

from tgsync_cli.core.insights import iso_week
from tgsync_cli.stores.sqlite_schema import dt_in, dt_out


def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime],
                    first_seen: Optional[Dict[Tuple[str, int], datetime]] = None,
                    active_since: Optional[Dict[Tuple[str, int], datetime]] = None,
                    message_times: Optional[Dict[Tuple[str, int], List[datetime]]] = None) -> int:
    """The flush as it was: the batch in a temporary table joined by set-based statements,
    activity rows inserted every flush (the caller turns SQLite's auto-checkpoint back on, so
    the commit pays for checkpoints as it did)."""
    if not seen and not first_seen:
        return 0
    first_seen, active_since = first_seen or {}, active_since or {}
    rows: list[tuple] = []
    weeks: Dict[date, str] = {}

    # a flush holds a few days at most: one isocalendar per day, not per member
    def week(at: Optional[datetime]) -> Optional[str]:
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
        earlier = ("k.first IS NOT NULL AND (m.joined_at IS NULL OR m.joined_at > k.first OR (m.joined_at = k.first"
                   " AND m.source IN ('service_message', 'member_import', 'history_import')))")
        cur.execute(
            "UPDATE memberships AS m SET"
            " last_seen = CASE WHEN k.last IS NOT NULL AND (m.last_seen IS NULL OR m.last_seen < k.last)"
            " THEN k.last ELSE m.last_seen END,"
            " proof_at = CASE WHEN k.last IS NOT NULL AND (m.proof_at IS NULL OR m.proof_at < k.last)"
            " THEN k.last ELSE m.proof_at END,"
            f" joined_at = CASE WHEN {earlier} THEN k.first ELSE m.joined_at END,"
            f" source = CASE WHEN {earlier} THEN 'message_activity' ELSE m.source END,"
            " status_at = CASE WHEN k.since IS NOT NULL AND m.status = 'active' AND m.status_at > k.since"
            " AND (m.hard_at IS NULL OR (m.status_at > m.hard_at AND k.since > m.hard_at))"
            " THEN k.since ELSE m.status_at END"
            " FROM flush_batch AS k WHERE m.club_id = k.club_id AND m.telegram_id = k.telegram_id"
            # (the IN makes SQLite walk the batch and probe memberships by key, never scan them)
            " AND (m.club_id, m.telegram_id) IN (SELECT club_id, telegram_id FROM flush_batch)")
        back = cur.execute(
            "SELECT m.club_id, m.telegram_id, COALESCE(k.first, k.last), k.last"
            " FROM flush_batch k CROSS JOIN memberships m"
            " ON m.club_id = k.club_id AND m.telegram_id = k.telegram_id WHERE k.last IS NOT NULL"
            " AND m.status <> 'active' AND (m.hard_at IS NULL OR m.hard_at < k.last)").fetchall()
        if back:
            self._reactivate(cur, {(c, t): dt_out(last) for c, t, _f, last in back},
                             {(c, t): dt_out(first) for c, t, first, _l in back})
    return len(seen)
