"""The last_seen flush on SQLite: one transaction of plain updates by primary key.

Why this shape: a flush carries one row per member who wrote since the last one (30,000 in a
busy hour across 1,000 clubs). Loading them into a temporary table and joining it cost a temp
B-tree and a file behind it; `executemany` of one UPDATE by (club_id, telegram_id) probes the
primary key once a row and writes nothing else. The few members no longer active (a departure
applied while this process still had them cached) are found by one probe of the batch's keys.
Activity rows (who wrote in which ISO week) are written once a week a person: this process
remembers what it wrote for the current and previous week, so a member writing every day costs
one activity insert a week, not one a flush.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Dict, Iterable, List, Optional, Set, Tuple

from tgsync_cli.core.evidence import AFTER_MESSAGES, KEEP_SEEN_TIMES, MESSAGES
from tgsync_cli.core.insights import iso_week
from tgsync_cli.stores.sqlite_schema import dt_in

# joined_at/source move to the earliest message evidence; every right-hand side reads the row's
# values from before the update, as one SQL UPDATE does
_AFTER = ", ".join(f"'{r}'" for r in AFTER_MESSAGES)
_EARLIER = ("(:first IS NOT NULL AND (joined_at IS NULL OR joined_at > :first OR (joined_at = :first"
            f" AND source IN ({_AFTER}))))")
# the batch's message times after the member's newest member event: the earliest is when a member
# active by messages alone is active since; the earliest few are kept with the member (a late leave
# among them tells which comes first after it)
_AFTER_HARD = "FROM json_each(:times) WHERE hard_at IS NULL OR value > hard_at"
_SINCE = f"(SELECT min(value) {_AFTER_HARD})"
_MERGED = ("(SELECT CASE WHEN count(*) THEN json_group_array(value) END FROM"
           " (SELECT value FROM json_each(coalesce(seen_times, '[]'))"
           f" UNION SELECT value {_AFTER_HARD} ORDER BY value LIMIT {KEEP_SEEN_TIMES}))")
# Read without parsing the JSON: a kept list is sorted, of fixed-width times each in quotes, so the
# newest is the text before its closing '"]' and the length tells how many (29 characters a time
# and a comma, one or two: the integer division holds either way for the few kept). A flush updates
# tens of thousands of rows; parsing every list made it twice as slow as the comparisons it replaced.
_KEPT_NEWEST = "substr(seen_times, -28, 26)"
_KEPT_COUNT = "((length(seen_times) - 1) / 29)"
_KEPT_NONE = "(seen_times IS NULL OR length(seen_times) < 28)"
_BATCH_AFTER_HARD = "(hard_at IS NULL OR :tmin > hard_at)"
# the common cases by comparison: a writer's kept times are older than this batch, so it is
# either full already (untouched) or gains the batch at its end; only a batch reaching back among
# them, or before the newest member event, merges the lists
_SEEN_TIMES = (
    "CASE WHEN :times IS NULL THEN seen_times"
    f" WHEN {_KEPT_NONE} THEN CASE WHEN {_BATCH_AFTER_HARD} AND :n <= {KEEP_SEEN_TIMES} THEN :times"
    f" ELSE {_MERGED} END"
    f" WHEN {_KEPT_NEWEST} < :tmin THEN CASE"
    f" WHEN {_KEPT_COUNT} >= {KEEP_SEEN_TIMES} THEN seen_times"
    f" WHEN {_BATCH_AFTER_HARD} AND {_KEPT_COUNT} + :n <= {KEEP_SEEN_TIMES}"
    " THEN substr(seen_times, 1, length(seen_times) - 1) || ',' || substr(:times, 2)"
    f" ELSE {_MERGED} END"
    " WHEN hard_at IS NOT NULL AND :tmax <= hard_at THEN seen_times"
    f" ELSE {_MERGED} END")
# a member active by messages alone since later than this batch: since its earliest time, or when
# the newest member event falls among the batch's times, the earliest after it
_STATUS_AT = (
    "CASE WHEN status = 'active' AND status_at > :tmin AND (hard_at IS NULL OR status_at > hard_at)"
    f" THEN CASE WHEN {_BATCH_AFTER_HARD} THEN :tmin ELSE coalesce(min(status_at, {_SINCE}), status_at) END"
    " ELSE status_at END")
UPDATE = (
    "UPDATE memberships SET"
    " last_seen = CASE WHEN :last IS NOT NULL AND (last_seen IS NULL OR last_seen < :last)"
    " THEN :last ELSE last_seen END,"
    " proof_at = CASE WHEN :last IS NOT NULL AND (proof_at IS NULL OR proof_at < :last)"
    " THEN :last ELSE proof_at END,"
    f" joined_at = CASE WHEN {_EARLIER} THEN :first ELSE joined_at END,"
    f" source = CASE WHEN {_EARLIER} THEN '{MESSAGES}' ELSE source END,"
    f" status_at = {_STATUS_AT},"
    f" seen_times = {_SEEN_TIMES}"
    " WHERE club_id = :cid AND telegram_id = :tid")
# the statement takes a flush row as it is (no dict built per member): each name, the row's field
_ROW_FIELD = {"cid": 1, "tid": 2, "first": 3, "last": 4, "times": 5, "tmin": 6, "tmax": 7, "n": 8}
BY_ROW = re.sub(r":(\w+)", lambda m: f"?{_ROW_FIELD[m.group(1)]}", UPDATE)
NOT_ACTIVE = (
    "SELECT m.club_id, m.telegram_id, m.hard_at FROM json_each(?) AS j"
    " JOIN memberships AS m ON m.club_id = json_extract(j.value, '$[0]')"
    " AND m.telegram_id = json_extract(j.value, '$[1]') WHERE m.status <> 'active'")

# a week's activity row, written once a week a person
ACTIVITY = ("INSERT OR IGNORE INTO activity (club_id, week, telegram_id) SELECT ?1, ?2, ?3"
            " WHERE EXISTS (SELECT 1 FROM memberships WHERE club_id = ?1 AND telegram_id = ?3)")

Row = Tuple[str, int, Optional[str], Optional[str], str, str, str, int]
ActivityKey = Tuple[str, str, int]  # club id, ISO week, telegram id


class WeekLedger:
    """Activity rows this process has written, for the newest two ISO weeks it has seen."""

    def __init__(self, limit: int = 2_000_000):
        self._weeks: Dict[str, Set[Tuple[str, int]]] = {}
        self._limit = limit

    def done(self, week: str) -> Set[Tuple[str, int]]:
        """Who this process has written in `week` (read only)."""
        return self._weeks.get(week) or set()

    def written(self, keys: Iterable[ActivityKey]) -> None:
        for cid, wk, tid in keys:
            self._weeks.setdefault(wk, set()).add((cid, tid))
        if len(self._weeks) > 2:  # ISO week strings sort in time order
            for wk in sorted(self._weeks)[:-2]:
                del self._weeks[wk]
        if sum(len(s) for s in self._weeks.values()) > self._limit:
            self._weeks.clear()  # only costs inserts the database ignores


def flush_rows(seen: Dict[Tuple[str, int], datetime], first_seen: Dict[Tuple[str, int], datetime],
               active_since: Dict[Tuple[str, int], datetime],
               message_times: Optional[Dict[Tuple[str, int], List[datetime]]] = None,
               ledger: Optional[WeekLedger] = None) -> Tuple[List[Row], List[ActivityKey]]:
    """The flush's rows in key order (the order `write` visits the table in), and the activity
    keys `ledger` has not seen written. A row: (club, telegram id, first, last, the message times
    as a JSON list: those given, else first, since and last; the earliest, the newest and how many
    of them), times as the store's text.

    Why it is written this way: it runs once a flush for every member who wrote (30,000 rows at
    1,000 busy clubs), and its Python cost was as large as the database's. A flush spans minutes:
    its few distinct seconds are converted (text, week, a one-time list) once each, not once a
    member; most writers sent one message, so their times are one and the same object."""
    memo: Dict[datetime, Tuple[str, str, str]] = {}  # time -> (text, ISO week, one-time JSON list)
    done: Dict[str, Set[Tuple[str, int]]] = {}

    def of(at: datetime) -> Tuple[str, str, str]:
        m = memo.get(at)
        if m is None:
            s = dt_in(at)
            assert s is not None
            m = memo[at] = (s, iso_week(at), '["' + s + '"]')
        return m

    def written(week: str) -> Set[Tuple[str, int]]:
        d = done.get(week)
        if d is None:
            d = done[week] = ledger.done(week) if ledger is not None else set()
        return d

    given = message_times or {}
    rows: List[Row] = []
    new: List[ActivityKey] = []
    for key in sorted(seen.keys() | first_seen.keys()):
        last, first, since = seen.get(key), first_seen.get(key), active_since.get(key)
        lm = fm = None
        if last is not None:
            lm = of(last)
            if key not in written(lm[1]):
                new.append((key[0], lm[1], key[1]))
        if first is not None:
            fm = lm if first is last and lm is not None else of(first)
            if lm is None or fm[1] != lm[1]:
                if key not in written(fm[1]):
                    new.append((key[0], fm[1], key[1]))
        times = given.get(key) or [t for t in (first, since, last) if t is not None]
        if len(times) == 1:
            tm = lm if times[0] is last and lm is not None else of(times[0])
            tmin, tmax, kept, n = tm[0], tm[0], tm[2], 1
        else:  # as text, no quotes: no encoder
            texts = sorted({of(t)[0] for t in times})
            kept, tmin, tmax, n = '["' + '","'.join(texts) + '"]', texts[0], texts[-1], len(texts)
        rows.append((key[0], key[1], None if fm is None else fm[0], None if lm is None else lm[0],
                     kept, tmin, tmax, n))
    new.sort()
    return rows, new


def write(cur, rows: List[Row], new: List[ActivityKey]) -> List[tuple]:
    """Apply a flush batch inside the caller's transaction: the activity rows `new` and the
    members' updates. Returns the members to bring back (club, telegram id, first, last: a message
    newer than what made them inactive).

    Rows come in key order (as `flush_rows` gives them), so the pages they touch are visited in
    turn rather than at random (a batch can be larger than SQLite's page cache). The update takes
    active members only; when it updated fewer rows than it was given (rare: someone left, or
    another process removed them, while this one had them cached), one probe finds them and they
    get the same update without that condition."""
    if new:  # only for a membership still there: `forget` may have erased the person meanwhile
        cur.executemany(ACTIVITY, new)
    cur.executemany(BY_ROW + " AND status = 'active'", rows)
    back: List[tuple] = []
    if cur.rowcount == len(rows):
        return back
    by_key = {(r[0], r[1]): r for r in rows}
    rest = []
    for cid, tid, hard_at in cur.execute(NOT_ACTIVE, (json.dumps(list(by_key)),)).fetchall():
        r = by_key[(cid, tid)]
        rest.append(r)
        if r[3] is not None and (hard_at is None or hard_at < r[3]):
            back.append((cid, tid, r[2] if r[2] is not None else r[3], r[3]))
    if rest:
        cur.executemany(BY_ROW, rest)
    return back
