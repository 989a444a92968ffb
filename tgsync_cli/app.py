"""Wiring: settings → store, cache, gateway, engine; and the core operations commands call.

Each CLI command parses its options, calls one function here, and renders the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tgsync_cli.botapi import parse_update
from tgsync_cli.cache import MemoryMemberCache
from tgsync_cli.config import Settings
from tgsync_cli.engine import Engine
from tgsync_cli.errors import InputError, TgsyncError
from tgsync_cli.gateway import OfflineGateway
from tgsync_cli.rules import iso
from tgsync_cli.scenario import load_scenario
from tgsync_cli.simulator import Simulator
from tgsync_cli.store import Store, open_store

BUNDLED_DEMO = Path(__file__).parent / "data" / "first-week.json"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def store_from(settings: Settings) -> Store:
    return open_store(settings.store.uri, settings.store.database)


def make_cache(settings: Optional[Settings] = None):
    """The member cache the settings ask for (Redis when cache.backend = "redis")."""
    ttl = settings.cache.ttl_seconds if settings is not None else 3600.0
    if settings is not None and settings.cache.backend == "redis":
        from tgsync_cli.redis_cache import RedisMemberCache  # scale-out mode only

        return RedisMemberCache.from_url(settings.cache.redis_url, ttl_seconds=ttl)
    return MemoryMemberCache(ttl_seconds=ttl)


def make_engine(store: Store, gateway, settings: Optional[Settings] = None, cache=None,
                **kwargs) -> Engine:
    engine = Engine(store, gateway, cache if cache is not None else make_cache(settings),
                    welcome_dm=bool(settings.bot.welcome_dm) if settings is not None else False,
                    bot_username=(settings.telegram.bot_username if settings is not None else None),
                    **kwargs)
    engine.start()
    return engine


# -- views (SPEC §5 shapes) -------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def club_view(doc: dict, full: bool = False) -> Dict[str, Any]:
    keys = ("telegram_id", "role", "status", "source")
    if full:
        keys += ("username", "first_name", "joined_at", "last_seen", "status_at")
    return {"club_id": doc["_id"], "telegram_group_id": doc["telegram_group_id"],
            "name": doc.get("name"), "sync": _plain(doc.get("sync") or {}),
            "members": [{k: _plain(m.get(k)) for k in keys} for m in doc.get("members", [])]}


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
    """Apply every valid line; report every invalid one with its line number."""
    p = Path(path)
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    engine = make_engine(store, gateway or OfflineGateway(), settings)
    report = ReplayReport()
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                events = parse_update(json.loads(line))
            except json.JSONDecodeError as exc:
                report.invalid.append((n, f"not valid JSON ({exc.msg}, column {exc.colno})"))
                continue
            except InputError as exc:
                report.invalid.append((n, str(exc)))
                continue
            for event in events:
                engine.handle(event)
                report.events += 1
            report.applied += 1
    engine.flush()
    report.notes = engine.notes
    return report


# -- store views --------------------------------------------------------------------------------
def find_club(store: Store, chat: str) -> dict:
    """CHAT is a numeric chat id, an @username, or a club _id."""
    chat = chat.strip()
    doc = None
    if chat.lstrip("-").isdigit():
        doc = store.club_by_group(int(chat))
    elif chat.startswith("club_"):
        doc = store.club_by_id(chat)
    elif chat.startswith("@"):
        doc = store.clubs.find_one({"username": chat[1:]})
    else:
        raise InputError(f"CHAT {chat!r}: expected a numeric chat id, an @username or a club_ id")
    if doc is None:
        raise TgsyncError(f"no club for {chat} in {store.uri_label}")
    return doc


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
        out.append(v)
    return out
