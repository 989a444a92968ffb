"""Wiring: settings → store, cache, gateway, engine; and the core operations commands call.

Each CLI command parses its options, calls one function here, and renders the result.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.errors import InputError
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.core.join_policy import policy_of
from tgsync_cli.runtime.config import Settings
from tgsync_cli.runtime.wiring import club_view, find_club, make_engine
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.runtime.pipeline import is_race
from tgsync_cli.runtime.forget_filter import ForgetFilter
from tgsync_cli.sources.botapi import parse_json_line, parse_update
from tgsync_cli.sources.scenario import load_scenario
from tgsync_cli.core.store import Store

BUNDLED_DEMO = Path(__file__).parent.parent / "data" / "first-week.json"


# -- simulate / demo --------------------------------------------------------------------------
@dataclass
class SimulationResult:
    clubs: List[Dict[str, Any]]
    sent: List[Dict[str, Any]]
    db_ops: int
    notes: List[str]
    delivered: int
    lost: int

    def as_json(self) -> Dict[str, Any]:
        keys = ("telegram_id", "role", "status", "source")
        clubs = [{**c, "members": [{k: m[k] for k in keys} for m in c["members"]]} for c in self.clubs]
        sent = [{k: s[k] for k in ("chat", "text", "buttons")} for s in self.sent]  # the scenario format
        return {"clubs": clubs, "sent": sent, "db_ops": self.db_ops}


def simulate(path: str | Path, store: Store, settings: Optional[Settings] = None) -> SimulationResult:
    scenario = load_scenario(path)  # refused whole before anything runs
    sim = Simulator(scenario, lambda gw: make_engine(store, gw, settings, cache=MemoryMemberCache()))
    sim.run()
    ops = store.ops
    clubs = [club_view(d, full=True) for d in store.all_clubs()]
    sent = [{"chat": s.chat, "recipient": _recipient(sim.world, s.chat), "text": s.text,
             "buttons": list(s.buttons)} for s in sim.gateway.sent]
    return SimulationResult(clubs, sent, ops, sim.engine.notes, sim.delivered, sim.lost_updates)


def _recipient(world, chat_id: int) -> str:
    """Who a post went to, in words: the group's title, or the person a private message reached."""
    chat = world.chats.get(chat_id)
    if chat is not None:
        return f"group {chat.title}"
    person = world.users.get(chat_id)
    if person is None:
        return "unknown chat"
    name = " ".join(p for p in (person.first_name, person.last_name) if p)
    return f"{name}{' @' + person.username if person.username else ''} (private)".strip()


# -- replay -----------------------------------------------------------------------------------
@dataclass
class ReplayReport:
    applied: int = 0
    events: int = 0
    invalid: List[Tuple[int, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def open_updates(path: str | Path):
    """The updates file, open for reading; a missing or unreadable one is refused in one line
    (before any store is opened, so a typo never leaves an empty store behind)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a file of Bot API updates")
    try:
        return p.open("rb")
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None


def replay(path: str | Path, store: Store, settings: Optional[Settings] = None,
           gateway=None) -> ReplayReport:
    """Apply every valid line; report every invalid one with its line number. Read as bytes, so a
    binary file, a line nested 200,000 deep or a 5,000-digit number is a per-line report, not a
    crash; a unique-key race with another process is retried, not a failure."""
    fh = open_updates(path)
    engine = make_engine(store, gateway or OfflineGateway(), settings)
    watch = ForgetFilter(engine)  # a `forget` run meanwhile wins over the file's events
    report = ReplayReport()
    chunk: List[List[Any]] = []
    with fh, _Batches(store) as batches:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                chunk.append(parse_update(parse_json_line(line)))
            except InputError as exc:
                report.invalid.append((n, str(exc)[:MAX_ERROR]))
                continue
            if len(chunk) >= BATCH_LINES:
                _apply(engine, batches, watch, chunk, report)
                chunk = []
        _apply(engine, batches, watch, chunk, report)
        batches.close()
    watch.poll()
    watch.flushing(engine.seen.people())
    engine.flush()
    watch.poll()
    report.notes = engine.notes
    return report


class _Batches:
    """Replay's batches where the store has them: one commit for BATCH_LINES lines (fewer if
    BATCH_SECONDS passed first), and past that as soon as the write lock is free. While another
    writer holds it, replay decides its next lines (the store plans them without the lock)
    instead of sleeping, up to PLAN_AHEAD times as many lines or BATCH_SECONDS. A killed replay
    loses at most its open batch, and running the file again applies every line again to the
    same result (each event's rules are idempotent)."""

    def __init__(self, store: Store) -> None:
        self._make = getattr(store, "batch", None)
        self._try = getattr(store, "try_write_lock", None)
        self._open: Optional[contextlib.ExitStack] = None
        self._lines = 0
        self._until = 0.0

    def open(self) -> None:
        if self._open is None and self._make is not None:
            stack = contextlib.ExitStack()
            stack.enter_context(self._make())
            self._open, self._lines, self._until = stack, 0, time.monotonic() + BATCH_SECONDS

    def line_done(self) -> None:
        self._lines += 1
        n = self._lines
        if self._open is None:
            return
        late = time.monotonic() >= self._until
        if n < BATCH_LINES and not late:
            return
        if self._try is not None and n < BATCH_LINES * PLAN_AHEAD and not late:
            if (n - BATCH_LINES) % TRY_EVERY or not self._try():
                return  # the lock is busy (or was a moment ago): decide the next lines meanwhile
        self.close()

    def close(self, exc: Optional[BaseException] = None) -> None:
        """Commit the open batch (with `exc`, as a block that raised it ends)."""
        stack, self._open = self._open, None
        if stack is not None:
            if exc is None:
                stack.close()
            else:
                stack.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> "_Batches":
        return self

    def __exit__(self, et: Any, exc: Any, tb: Any) -> None:
        self.close(exc)


def _apply(engine, batches: _Batches, watch: ForgetFilter, chunk: List[List[Any]], report: ReplayReport) -> None:
    """Lines parsed before any of them is applied, then applied in the open batch."""
    for events in chunk:
        batches.open()
        for event in events:
            kept = watch.keep(event)  # a `forget` run meanwhile wins over the file's events
            if kept is not None:
                _handle(engine, kept)
                watch.applied(kept)
            report.events += 1
        report.applied += 1
        batches.line_done()


MAX_ERROR = 200
BATCH_LINES = 64
BATCH_SECONDS = 0.05
PLAN_AHEAD = 8
TRY_EVERY = 8  # lines between two looks at the write lock past BATCH_LINES
RACE_ATTEMPTS = 20


def _handle(engine, event) -> None:
    for attempt in range(RACE_ATTEMPTS):
        try:
            return engine.handle(event)
        except Exception as exc:
            if not is_race(exc) or attempt == RACE_ATTEMPTS - 1:
                raise


# -- store views --------------------------------------------------------------------------------


def roster(store: Store, chat: str) -> Dict[str, Any]:
    return club_view(find_club(store, chat), full=True)


def clubs(store: Store) -> List[Dict[str, Any]]:
    out = []
    for doc in store.all_clubs():
        v = club_view(doc)
        members = v.pop("members")
        v["active_members"] = sum(1 for m in members if m["status"] == "active")
        v["members_total"] = len(members)
        v["drift"] = v["sync"].get("drift")
        v["join_policy"] = policy_of(doc)
        out.append(v)
    return out
