"""Story builders: a group, a timeline, and what the roster shows afterwards."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Dict, Optional

from tgsync_cli import app as core
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.stores import open_store

START = datetime(2025, 3, 1, 7, 0, 0)
CHAT = -1001500
BOT = 8000
NAMES = {1: "Asel", 2: "Bolat", 3: "Cyrus", 4: "Dariga", 5: "Yerlan", 6: "Zere", 7: "Ivan", 8: "Aida"}


class Story:
    """Given a group (members and their statuses), when these things happen…"""

    def __init__(self, members: Optional[Dict[int, str]] = None, privacy_mode: bool = False,
                 chat_type: str = "supergroup", chat: int = CHAT, title: str = "Sunday Long Run",
                 extra_users: Optional[list] = None):
        members = {1: "creator", 2: "member", 3: "member", 4: "member"} if members is None else members
        self.chat = chat
        users = [{"id": i, "first_name": n} for i, n in NAMES.items()] + list(extra_users or [])
        self.scenario: Dict[str, Any] = {
            "bot": {"id": BOT, "username": "club_sync_bot", "privacy_mode": privacy_mode},
            "users": users,
            "chats": [{"id": chat, "type": chat_type, "title": title,
                       "members": [{"user": u, "status": s} for u, s in members.items()]}],
            "timeline": []}
        self._t = START

    def then(self, do: str, minutes: float = 1, **fields) -> "Story":
        self._t += timedelta(minutes=minutes)
        step = {"at": self._t.isoformat() + "Z", "do": do}
        if "chat" not in fields and do not in ("start", "restart_bot", "bot_offline", "bot_online"):
            fields["chat"] = self.chat
        if "as_" in fields:
            fields["as"] = fields.pop("as_")
        step.update(fields)
        self.scenario["timeline"].append(step)
        return self

    def bot_added(self, as_: str = "administrator", by: int = 1) -> "Story":
        return self.then("add_bot", by=by, as_=as_)

    def write(self, tmp_path: Path) -> Path:
        p = tmp_path / "story.json"
        p.write_text(json.dumps(self.scenario))
        return p

    def run(self, tmp_path: Path, store=None) -> "Outcome":
        store = store or open_store("memory:")
        result = core.simulate(self.write(tmp_path), store)
        return Outcome(result, store)


class Outcome:
    def __init__(self, result, store):
        self.result = result
        self.store = store
        self.clubs = {c["telegram_group_id"]: c for c in result.clubs}

    def club(self, chat: int = CHAT) -> Optional[dict]:
        return self.clubs.get(chat)

    def member(self, tid: int, chat: int = CHAT):
        club = self.club(chat)
        for m in (club or {}).get("members", []):
            if m["telegram_id"] == tid:
                return m["role"], m["status"], m["source"]
        return None

    def roster(self, chat: int = CHAT) -> Dict[int, tuple]:
        return {m["telegram_id"]: (m["role"], m["status"], m["source"])
                for m in (self.club(chat) or {}).get("members", [])}

    @property
    def sent(self):
        return self.result.sent

    def account(self, tid: int):
        return self.store.user_by_telegram_id(tid)


def play(story: Story, store, wrap=None, settings=None):
    """Run the story on `store`; return the simulated Telegram as the story left it (its world,
    and everything the bot sent). `wrap` turns the simulator's gateway into the one the engine
    gets, for a Telegram that fails in a way the simulator's world never does."""
    sim = Simulator(story.scenario,
                    lambda gw: core.make_engine(store, wrap(gw) if wrap else gw, settings))
    sim.run()
    return sim.gateway


@contextmanager
def connected(gw):
    """What the CLI's GATEWAY_FACTORY yields: here, the simulated Telegram a story left behind."""
    yield gw


class Altered:
    """The simulated Telegram with some of its calls replaced: an exception given for a call is
    raised by it, anything else given is called instead. Telegram fails in ways the simulator's
    world never does (a capped listing, an internal error, a blocked DM)."""

    def __init__(self, gw, **calls):
        self._gw, self._calls = gw, calls

    def __getattr__(self, name):
        if name not in self._calls:
            return getattr(self._gw, name)
        replacement = self._calls[name]
        if isinstance(replacement, BaseException):
            def refuse(*args, **kwargs):
                raise replacement
            return refuse
        return replacement


def roster(store, chat: int = CHAT) -> Optional[Dict[int, tuple]]:
    """Who the store says is in the club: {telegram id: (role, status, source)}; None: no club."""
    doc = store.club_by_group(chat)
    if doc is None:
        return None
    return {m["telegram_id"]: (m["role"], m["status"], m["source"]) for m in doc["members"]}


def engine_with_club(store, chat: ChatRef, at: datetime, cache=None, bot_id: int = 9000) -> Engine:
    """An engine with no Telegram connection, right after its bot was added (as a plain member)
    to `chat`: the club exists, and everything else is up to the test's events."""
    engine = Engine(store, OfflineGateway(bot_id), cache if cache is not None else MemoryMemberCache(),
                    bot_id=bot_id)
    engine.start()
    engine.handle(BotStatusChanged(chat, None, MemberState("left"), MemberState("member"), at))
    return engine
