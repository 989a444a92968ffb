"""An optimistic batch: member writes decided before the write lock, made under it if nothing
they were decided on moved meanwhile.

Why: with two writer processes on one `file:` store only one can hold the write lock, and a
batch that read, decided and wrote inside it held the lock for two thirds of a replay's time, so
a second process could add little. A member observation decides on two rows only (the
membership and, when there is none, the departure note of that one person in that club), so a
batch can read those rows without the lock, decide, and keep the writes as a plan. Under the
lock the plan reads each of those rows again: if every one is as it was read, no other process
touched what the decisions rest on and the planned writes are made as they stand; if any moved,
every observation of the plan is decided again on what is there now, in order, exactly as a
batch holding the lock throughout would have done. Either way the store ends as if the batch's
observations had run under the lock at the moment it was taken.

What the plan cannot redo is what the caller did with an answer: an outcome handed back before
the lock (the status a member cache notes) may differ from the one a redo arrives at, as it
would had another process written just after this one; the cache is a hint the store corrects.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

Key = Tuple[str, int]  # (club id, telegram id)
Row = Optional[Tuple[Any, ...]]
State = Tuple[Row, Row]  # the membership row and the departure row, as stored
Reader = Callable[[sqlite3.Cursor, str, int], State]
Step = Callable[[sqlite3.Cursor], object]


class Plan:
    """The writes of one batch's observations, in order, and the rows they were decided on."""

    def __init__(self) -> None:
        self.discard()
        self.redone = 0  # plans decided again under the lock (another process moved a row)

    def discard(self) -> None:
        self._read: Dict[Key, Tuple[State, Reader]] = {}  # first read, before this batch wrote
        self._now: Dict[Key, State] = {}  # as this batch's planned writes leave them
        self._writes: List[Step] = []
        self._redo: List[Step] = []
        self._bumps: Counter[str] = Counter()  # club -> changes (one version bump a club)
        self._appends: List[Tuple[str, Tuple[Any, ...]]] = []  # inserts nothing reads back

    def __bool__(self) -> bool:
        return bool(self._writes)

    def state(self, key: Key) -> Optional[State]:
        """The rows as this batch has planned them (None: not touched yet, read the store)."""
        return self._now.get(key)

    def add(self, key: Key, read: Optional[Tuple[State, Reader]], after: State, write: Step, redo: Step,
            changed: bool, append: Optional[Tuple[str, Tuple[Any, ...]]] = None) -> None:
        """One observation: `read` is what the store held (None when decided on this plan's own
        rows), `after` what its writes leave, `redo` the observation decided again under the lock,
        `append` an insert (a log entry) made after the writes, in order, with its like."""
        if read is not None:
            self._read.setdefault(key, read)
        self._now[key] = after
        self._writes.append(write)
        self._redo.append(redo)
        if changed:
            self._bumps[key[0]] += 1
        if append is not None:
            self._appends.append(append)

    def apply(self, cur: sqlite3.Cursor) -> bool:
        """Under the write lock: the planned writes if what they rest on is unchanged (True),
        else every observation decided again on the rows as they are now (False)."""
        fresh = all(reader(cur, cid, tid) == state for (cid, tid), (state, reader) in self._read.items())
        if fresh:
            for step in self._writes:
                step(cur)
            for sql, group in itertools.groupby(self._appends, key=lambda a: a[0]):
                cur.executemany(sql, [params for _sql, params in group])
            if self._bumps:  # a club's version says "changed since": one bump a club is enough
                cur.executemany("UPDATE clubs SET version = version + ? WHERE id = ?",
                                [(n, cid) for cid, n in self._bumps.items()])
        else:
            self.redone += 1
            for step in self._redo:
                step(cur)
        self.discard()
        return fresh
