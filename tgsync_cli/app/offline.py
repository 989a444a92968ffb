"""Wiring: settings → store, cache, gateway, engine; and the core operations commands call.

Each CLI command parses its options, calls one function here, and renders the result.
"""

from __future__ import annotations

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
        return {"clubs": clubs, "sent": self.sent, "db_ops": self.db_ops}


def simulate(path: str | Path, store: Store, settings: Optional[Settings] = None) -> SimulationResult:
    scenario = load_scenario(path)  # refused whole before anything runs
    sim = Simulator(scenario, lambda gw: make_engine(store, gw, settings, cache=MemoryMemberCache()))
    sim.run()
    ops = store.ops
    clubs = [club_view(d, full=True) for d in store.all_clubs()]
    sent = [{"chat": s.chat, "text": s.text, "buttons": list(s.buttons)} for s in sim.gateway.sent]
    return SimulationResult(clubs, sent, ops, sim.engine.notes, sim.delivered, sim.lost_updates)


# -- replay -----------------------------------------------------------------------------------
@dataclass
class ReplayReport:
    applied: int = 0
    events: int = 0
    invalid: List[Tuple[int, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def replay(path: str | Path, store: Store, settings: Optional[Settings] = None,
           gateway=None) -> ReplayReport:
    """Apply every valid line; report every invalid one with its line number. Read as bytes, so a
    binary file, a line nested 200,000 deep or a 5,000-digit number is a per-line report, not a
    crash; a unique-key race with another process is retried, not a failure."""
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    engine = make_engine(store, gateway or OfflineGateway(), settings)
    watch = ForgetFilter(engine)  # a `forget` run meanwhile wins over the file's events
    report = ReplayReport()
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                events = parse_update(parse_json_line(line))
            except InputError as exc:
                report.invalid.append((n, str(exc)[:MAX_ERROR]))
                continue
            for event in events:
                kept = watch.keep(event)
                if kept is not None:
                    _handle(engine, kept)
                    watch.applied(kept)
                report.events += 1
            report.applied += 1
    watch.poll()
    engine.flush()
    watch.poll()
    report.notes = engine.notes
    return report


MAX_ERROR = 200
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
