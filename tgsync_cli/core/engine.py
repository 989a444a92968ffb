"""The sync engine: the rules applied to domain events, against three small protocols.

Store (system of record), TelegramGateway (questions to Telegram, posts) and MemberCache
(known active members). The engine is made of named parts, each given what it uses:

- `directory` (ClubDirectory): clubs by chat id, migrations, Telegram calls that follow them;
- `seen` (SeenBuffer): message times held between flushes (the hot path's only write);
- one handler per route, found through `handlers`, a table of event type → handler.

The hot path — a message from a cached active member — is two dict lookups and a note in the
seen-buffer; everything else is the slow path.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

from tgsync_cli.core.app_requests import RequestDesk
from tgsync_cli.core.cache import MemberCache
from tgsync_cli.core.club_lifecycle import BotStatusHandler
from tgsync_cli.core.clubs import BotSelf, ClubDirectory
from tgsync_cli.core.deep_links import DeepLinkHandler
from tgsync_cli.core.events import (
    BotStatusChanged,
    BotStatusRecheck,
    ChatMigrated,
    DeepLinkStart,
    JoinRequested,
    MemberStatusChanged,
    MessageSeen,
    RequestsDue,
    RosterObserved,
)
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.join_requests import JoinRequestHandler
from tgsync_cli.core.member_changes import MemberStatusHandler
from tgsync_cli.core.messages import MessageHandler
from tgsync_cli.core.models import ACTIVE, ClubInfo, ReconcileReport, RosterResult  # noqa: F401 (re-exported)
from tgsync_cli.core.roster import RosterSync
from tgsync_cli.core.seen import SeenBuffer
from tgsync_cli.core.store import Store
from tgsync_cli.core.welcome import Welcome

log = logging.getLogger("tgsync.engine")

Handler = Callable[[Any], None]


class Engine:
    def __init__(self, store: Store, gateway: TelegramGateway, cache: MemberCache, *,
                 bot_id: Optional[int] = None, bot_username: Optional[str] = None,
                 welcome_dm: bool = False) -> None:
        self.store = store
        self.gateway = gateway
        self.cache = cache
        self.notes: List[str] = []
        self.me = BotSelf(bot_id, bot_username)
        self.seen = SeenBuffer()
        self.directory = ClubDirectory(store, gateway, cache, self.note)
        dm_blocked: Dict[int, bool] = {}  # private my_chat_member seen by this process
        self.roster = RosterSync(self.directory, store, cache, gateway, self.me, self.note)
        self.welcome = Welcome(self.directory, store, gateway, self.me, self.note)
        self.messages = MessageHandler(self.directory, self.seen, store, cache, self.me)
        self.join_requests = JoinRequestHandler(self.directory, store, gateway, self.me, self.note)
        self.members = MemberStatusHandler(self.directory, self.seen, store, cache, gateway, self.me,
                                           dm_blocked, self.join_requests, welcome_dm)
        self.bot_status = BotStatusHandler(self.directory, store, gateway, self.me, self.roster,
                                           self.welcome, dm_blocked, self.note)
        self.deep_links = DeepLinkHandler(self.directory, store, cache, gateway, self.me, self.note,
                                          self.join_requests)
        self.desk = RequestDesk(self.directory, store, gateway, self.me, self.join_requests, self.note)
        self.handlers: Dict[type, Handler] = {
            MessageSeen: self.messages,
            MemberStatusChanged: self.members,
            BotStatusChanged: self.bot_status,
            DeepLinkStart: self.deep_links,
            ChatMigrated: self._on_migrated,
            RosterObserved: self.roster,
            BotStatusRecheck: self._on_recheck,
            JoinRequested: self.join_requests,
            RequestsDue: self._on_requests_due,
        }

    # -- the bot's identity, as configured or learnt from Telegram --------------------------------
    @property
    def bot_id(self) -> Optional[int]:
        return self.me.id

    @bot_id.setter
    def bot_id(self, value: Optional[int]) -> None:
        self.me.id = value

    @property
    def bot_username(self) -> Optional[str]:
        return self.me.username

    @bot_username.setter
    def bot_username(self, value: Optional[str]) -> None:
        self.me.username = value

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """One query: the club map and the warm member cache (a restart costs one round trip)."""
        self.directory.start()

    def flush(self) -> int:
        """Write buffered last_seen (and message evidence) in one round trip: interval and shutdown."""
        if self.seen.is_empty():
            self.store.settle()
            return 0
        batch = self.seen.drain()
        try:
            return self.store.flush_last_seen(batch.last, batch.first, batch.since, batch.times)
        except Exception:
            self.seen.restore(batch)  # nothing accepted is lost: kept for the next flush
            raise

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info(text)

    def handle(self, event: Any) -> None:
        handler = self.handlers.get(type(event))
        if handler is None:
            raise TypeError(f"not an event: {event!r}")
        handler(event)

    def _on_migrated(self, ev: ChatMigrated) -> None:
        self.directory.migrate(ev.old_chat_id, ev.new_chat_id)

    def _on_requests_due(self, ev: RequestsDue) -> None:
        self.desk.poll(ev.at)

    def _on_recheck(self, ev: BotStatusRecheck) -> None:
        self.bot_status.startup_check(ev.at)

    # -- what commands ask of the engine ----------------------------------------------------------
    def holds_active(self, chat_id: int, telegram_id: int) -> bool:
        """Memory only, so another thread (serve's update loop) may ask: is this a known club's
        member the cache holds as active? A stale answer costs speed, never correctness: the
        message still comes through handle()."""
        info = self.directory.known(chat_id)
        local = getattr(self.cache, "is_active_local", None)
        return info is not None and local is not None and local(info.club_id, telegram_id)

    def club(self, chat_id: int, discover: bool = True) -> Optional[ClubInfo]:
        return self.directory.club(chat_id, discover)

    def clubs(self) -> List[ClubInfo]:
        return self.directory.clubs()

    def tg(self, info: ClubInfo, call: Callable[..., Any], *args: Any) -> Any:
        return self.directory.tg(info, call, *args)

    def startup_check(self, at: datetime) -> None:
        self.bot_status.startup_check(at)

    def import_admins(self, info: ClubInfo, at: datetime) -> Optional[RosterResult]:
        return self.roster.import_admins(info, at)

    def import_members(self, info: ClubInfo, at: datetime,
                       progress: Optional[Callable[[int], None]] = None) -> RosterResult:
        return self.roster.import_members(info, at, progress)

    def reconcile(self, info: ClubInfo, at: datetime, dry_run: bool = False,
                  allow_mass_departure: bool = False) -> ReconcileReport:
        return self.roster.reconcile(info, at, dry_run, allow_mass_departure)

    def post_invite(self, info: ClubInfo, welcome: bool = False) -> bool:
        return self.welcome.post_invite(info, welcome)


__all__ = ["Engine", "ClubInfo", "ReconcileReport", "RosterResult", "ACTIVE"]
