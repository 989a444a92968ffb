"""The SQLite store's member writes: observations and listings decided by `core.evidence.decide`
inside one transaction, and the set-based last_seen flush. A part SqliteStore holds."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Sequence, Tuple, cast

from tgsync_cli.core.documents import MemberDoc
from tgsync_cli.core.events import Person
from tgsync_cli.core.store import account_fields
from tgsync_cli.stores.common import member_doc, new_id
from tgsync_cli.core.evidence import MESSAGES, Decision, Observation, Outcome, decide
from tgsync_cli.stores.sqlite_flush import WeekLedger, flush_rows
from tgsync_cli.stores.sqlite_flush import write as write_flush
from tgsync_cli.stores.sqlite_plan import Plan, Row, State
from tgsync_cli.stores.sqlite_schema import MEMBER_COLS, dt_in, dt_out, member_in, member_out


def member_row(r: Sequence[Any], raw: bool = False) -> Dict[str, Any]:
    """A memberships row as the document shows it (`raw`: with this store's guard fields)."""
    m = {k: member_out(k, v) for k, v in zip(MEMBER_COLS, r, strict=False)}
    return m if raw else dict(member_doc(m))


_ACCOUNT_TIMES = (" created_at = MIN(COALESCE(users.created_at, excluded.created_at), excluded.created_at),"
                  " updated_at = MAX(COALESCE(users.updated_at, excluded.updated_at), excluded.updated_at)")


def upsert_account(cur: sqlite3.Cursor, p: Person, at: datetime, keep_names: bool = False) -> str:
    """The account of a person a membership is created for: names kept when asked."""
    f = account_fields(p, at)
    uid = new_id("user")
    # An account met again (a membership in another club, or made by another process a moment
    # ago) keeps the earliest created_at and the newest updated_at and names, in any order.
    if keep_names:
        cur.execute("INSERT INTO users (id, telegram_id, username, first_name, last_name, language_code,"
                    " created_at, updated_at) VALUES (?, ?, NULL, ?, NULL, NULL, ?, ?)"
                    " ON CONFLICT(telegram_id) DO UPDATE SET" + _ACCOUNT_TIMES,
                    (uid, p.id, p.first_name, dt_in(at), dt_in(at)))
    else:
        newer = "excluded.updated_at >= COALESCE(users.updated_at, excluded.updated_at)"
        names = ", ".join(f" {k} = CASE WHEN {newer} THEN excluded.{k} ELSE users.{k} END"
                          for k in ("username", "first_name", "last_name", "language_code"))
        cur.execute("INSERT INTO users (id, telegram_id, username, first_name, last_name, language_code,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(telegram_id) DO UPDATE SET" + names + "," + _ACCOUNT_TIMES
                    + " RETURNING id",  # inserted or updated, the row's id: no second statement
                    (uid, p.id, f["username"], f["first_name"], f["last_name"], f["language_code"],
                     dt_in(at), dt_in(at)))
        row = cur.fetchone()
        if row is not None:
            return row[0]
    return cur.execute("SELECT id FROM users WHERE telegram_id = ?", (p.id,)).fetchone()[0]


def _update_changed(cur: sqlite3.Cursor, club_id: str, tid: int, old: Sequence[Any],
                    vals: List[Any]) -> None:
    """Write only the columns whose value moved (`old`: the row as stored, in MEMBER_COLS order):
    a column left out of SET leaves the indexes on it untouched (telegram_id is in three), so a
    leave rewrites one index entry, not four."""
    moved = [(c, v) for c, v, o in zip(MEMBER_COLS, vals, old, strict=True) if v != o or type(v) is not type(o)]
    if moved:
        sets = ", ".join(f"{c} = ?" for c, _v in moved)
        cur.execute(f"UPDATE memberships SET {sets} WHERE club_id = ? AND telegram_id = ?",
                    [*(v for _c, v in moved), club_id, tid])


Tx = Callable[..., ContextManager[sqlite3.Cursor]]
Planned = Callable[[str], ContextManager[Optional[Tuple[sqlite3.Cursor, Plan]]]]


_USER_ID = MEMBER_COLS.index("user_id")
_MEMBER_INSERT = (f"INSERT INTO memberships (club_id, {', '.join(MEMBER_COLS)}) VALUES "
                  f"(?, {', '.join('?' * len(MEMBER_COLS))})")
_DEPARTURE_UPSERT = ("INSERT INTO departures (club_id, telegram_id, status, at) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT(club_id, telegram_id) DO UPDATE SET status = excluded.status,"
                     " at = excluded.at WHERE departures.at <= excluded.at")
_LOG_INSERT = ("INSERT INTO membership_log (club_id, telegram_id, at, from_status, from_role,"
               " to_status, to_role, source, actor, invite_link, invited_by) VALUES (?,?,?,?,?,?,?,?,?,?,?)")


@dataclass(frozen=True)
class _Writes:
    """A decision's statements with their parameters made before the write lock is taken."""

    departure: Optional[Tuple[Any, ...]]  # a departure note's parameters
    vals: Optional[List[Any]]  # the membership's columns as stored (user_id set under the lock)
    account: bool
    clear_departure: bool
    log: Optional[Tuple[Any, ...]]  # a membership_log entry's parameters


def _prepare(club_id: str, obs: Observation, d: Decision) -> _Writes:
    tid = obs.person.id
    dep = None if d.departure is None else (club_id, tid, d.departure["status"], dt_in(d.departure["at"]))
    vals = None if d.member is None else [member_in(c, d.member.get(c)) for c in MEMBER_COLS]
    log = None
    if d.log is not None:
        lg = d.log
        fr = lg["from"] or {}
        log = (club_id, tid, dt_in(lg["at"]), fr.get("status"), fr.get("role"), lg["to"]["status"],
               lg["to"]["role"], lg["source"], lg["actor"], lg["invite_link"], lg.get("invited_by"))
    return _Writes(dep, vals, d.account, d.clear_departure, log)


def _write(cur: sqlite3.Cursor, club_id: str, obs: Observation, row: Row, w: _Writes) -> None:
    """A decision's writes but its log entry and the club's version bump (`row`: the membership
    as it stood when decided on)."""
    tid = obs.person.id
    if w.departure is not None:
        cur.execute(_DEPARTURE_UPSERT, w.departure)
    if w.vals is not None:
        vals = w.vals
        if w.account:
            vals = list(vals)
            vals[_USER_ID] = upsert_account(cur, obs.person, obs.evidence_at or obs.at, obs.keep_names)
        if row is None:
            cur.execute(_MEMBER_INSERT, [club_id, *vals])
        else:
            _update_changed(cur, club_id, tid, row, vals)
    if w.clear_departure:
        cur.execute("DELETE FROM departures WHERE club_id = ? AND telegram_id = ?", (club_id, tid))


def _after(state: State, w: _Writes) -> State:
    """The rows as a decision's writes leave them (what a later observation in the plan sees;
    a new account's id is not known before the lock, and nothing decides on it)."""
    row, dep = state
    if w.vals is not None:
        row = tuple(w.vals)
    if w.departure is not None and (dep is None or dep[1] <= w.departure[3]):
        dep = w.departure[2:]
    if w.clear_departure:
        dep = None
    return row, dep


@contextlib.contextmanager
def _never_planned(name: str) -> Iterator[None]:
    yield None


class SqliteMembers:
    """Given the store's transactions (`tx(name, write=True)`): one transaction per call."""

    def __init__(self, tx: Tx, planned: Optional[Planned] = None) -> None:
        self._tx = tx
        self._planned = planned or _never_planned
        self._activity_ledger = WeekLedger()  # who this process already wrote in which week

    def forget_written(self) -> None:
        """The transaction that wrote activity rows was rolled back: write them again."""
        self._activity_ledger = WeekLedger()

    def member(self, club_id: str, tid: int) -> Optional[MemberDoc]:
        with self._tx("member", write=False) as cur:
            return self._member(cur, club_id, tid)

    def _member(self, cur, club_id: str, tid: int, raw: bool = False) -> Optional[MemberDoc]:
        row = self._row(cur, club_id, tid)
        return cast(MemberDoc, member_row(row, raw)) if row else None

    @staticmethod
    def _row(cur, club_id: str, tid: int) -> Optional[Tuple[Any, ...]]:
        return cur.execute(f"SELECT {', '.join(MEMBER_COLS)} FROM memberships WHERE club_id = ? AND telegram_id = ?",
                           (club_id, tid)).fetchone()

    def _state(self, cur, club_id: str, tid: int) -> State:
        """What an observation of `tid` decides on: the membership row, and the departure note
        when there is no membership (as stored)."""
        row = self._row(cur, club_id, tid)
        dep = None if row is not None else cur.execute(
            "SELECT status, at FROM departures WHERE club_id = ? AND telegram_id = ?", (club_id, tid)).fetchone()
        return row, dep

    @staticmethod
    def _decide(club_id: str, state: State, obs: Observation) -> Decision:
        row, dep = state
        current = member_row(row, raw=True) if row else None
        return decide(club_id, current, {"status": dep[0], "at": dt_out(dep[1])} if dep else None, obs)

    def _apply(self, cur, club_id: str, obs: Observation) -> Outcome:
        state = self._state(cur, club_id, obs.person.id)
        d = self._decide(club_id, state, obs)
        w = _prepare(club_id, obs, d)
        _write(cur, club_id, obs, state[0], w)
        if w.log is not None:
            cur.execute(_LOG_INSERT, w.log)
        if d.outcome.changed:
            cur.execute("UPDATE clubs SET version = version + 1 WHERE id = ?", (club_id,))
        return d.outcome

    def _plan(self, cur, plan: Plan, club_id: str, obs: Observation) -> Outcome:
        """Decide now, without the write lock, and leave the writes to the batch's plan."""
        key = (club_id, obs.person.id)
        state = plan.state(key)
        read = None
        if state is None:
            state = self._state(cur, club_id, obs.person.id)
            read = (state, self._state)
        d = self._decide(club_id, state, obs)
        w = _prepare(club_id, obs, d)
        row = state[0]
        plan.add(key, read, _after(state, w),
                 lambda c: _write(c, club_id, obs, row, w),
                 lambda c: self._apply(c, club_id, obs), d.outcome.changed,
                 (_LOG_INSERT, w.log) if w.log is not None else None)
        return d.outcome

    def observe(self, club_id: str, obs: Observation) -> Outcome:
        """One transaction: account upsert (if a membership is created), guarded membership
        write, departure note, log entry. A new member costs this one round trip. Inside a
        batch that has not taken the write lock yet: decided now, written with the batch."""
        with self._planned("observe") as planned:
            if planned is not None:
                return self._plan(*planned, club_id, obs)
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
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None,
                        message_times: Optional[Dict[Tuple[str, int], List[datetime]]] = None) -> int:
        """One transaction, one indexed update per member that wrote: O(members changed), never
        backwards. `first_seen` is message evidence for `source`/`joined_at` (the earliest evidence decides)."""
        if not seen and not first_seen:
            return 0
        ledger = self._activity_ledger
        rows, written = flush_rows(seen, first_seen or {}, active_since or {}, message_times, ledger)
        with self._tx("flush_last_seen") as cur:
            back = write_flush(cur, rows, written)
            if back:
                self._reactivate(cur, {(c, t): dt_out(last) for c, t, _f, last in back},
                                 {(c, t): dt_out(first) for c, t, first, _l in back})
        ledger.written(written)  # only once committed
        return len(seen)

    @staticmethod
    def _reactivate(cur, seen, first_seen) -> None:
        """A message newer than the member event that made someone inactive proves them back
        (a message proves membership), also when another process applied that event while this
        one had the member cached: the message never reached the store until now."""
        for (cid, tid), last in seen.items():
            first = dt_in(first_seen.get((cid, tid), last))
            last_s = dt_in(last)
            row = cur.execute(
                "UPDATE memberships SET status = 'active',"
                " status_at = CASE WHEN hard_at IS NULL OR hard_at < ?"
                " THEN coalesce((SELECT min(value) FROM json_each(seen_times)), ?) ELSE ? END,"
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
