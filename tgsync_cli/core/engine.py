"""The sync engine: SPEC §3 applied to domain events, against three small protocols.

Store (system of record), TelegramGateway (questions to Telegram, posts) and MemberCache
(known active members). The hot path — a message from a cached active member — is two dict
lookups and a `last_seen` note in memory; everything else is the slow path.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Dict, List, Optional, Tuple

from tgsync_cli.core.cache import MemberCache
from tgsync_cli.core.club_lifecycle import ClubLifecycle
from tgsync_cli.core.deep_links import DeepLinks
from tgsync_cli.core.events import (
    BotStatusChanged,
    BotStatusRecheck,
    ChatMigrated,
    DeepLinkStart,
    MemberStatusChanged,
    MessageSeen,
    RosterObserved,
)
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.member_changes import MemberChanges
from tgsync_cli.core.models import ACTIVE, ClubInfo, ReconcileReport, RosterResult  # noqa: F401 (re-exported)
from tgsync_cli.core.roster import RosterSync
from tgsync_cli.core.rules import (
    is_person,
)
from tgsync_cli.core.store import Observation, Store

log = logging.getLogger("tgsync.engine")

UNKNOWN_CLUB_TTL = 60.0








class Engine(ClubLifecycle, MemberChanges, RosterSync, DeepLinks):
    def __init__(self, store: Store, gateway: TelegramGateway, cache: MemberCache, *,
                 bot_id: Optional[int] = None, bot_username: Optional[str] = None,
                 welcome_dm: bool = False):
        self.store = store
        self.gateway = gateway
        self.cache = cache
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.welcome_dm = welcome_dm
        self.notes: List[str] = []
        self.last_seen: Dict[Tuple[str, int], datetime] = {}
        self.first_seen: Dict[Tuple[str, int], datetime] = {}  # message evidence (SPEC §2 source)
        # the earliest message since the last flush, or since a message last made the member
        # active: what status_at is for a member active by messages alone (the store lowers it
        # only for them, and only to a time after their last member event), in any order
        self.active_since: Dict[Tuple[str, int], datetime] = {}
        self._versions: Dict[str, int] = {}      # club id → version read by the last start()
        self._active: Dict[str, List[int]] = {}  # club id → active ids read with that version
        self._clubs: Dict[int, ClubInfo] = {}
        self._unknown: Dict[int, float] = {}
        self.dm_blocked: Dict[int, bool] = {}  # private my_chat_member seen by this process
        self.recent_changes: Dict[Tuple[str, int], Tuple[str, datetime]] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """One query: the club map and the warm member cache (a restart costs one round trip).
        Called again to re-warm, it re-reads only clubs whose version moved since."""
        idx = self.store.club_index(self._versions or None)
        warm_clubs = getattr(self.cache, "warm_clubs", None)
        changed: Dict[str, object] = {}
        for doc in idx.clubs:
            info = self._remember(doc)
            self._versions[info.club_id] = doc.get("version", 0)
            changed[info.club_id] = doc.get("active", ())
        for cid in idx.removed:
            self._versions.pop(cid, None)
            self._active.pop(cid, None)
        if warm_clubs is not None:  # per-club cache: only what changed is rebuilt
            warm_clubs(changed, unchanged=list(self._versions), removed=idx.removed)
            return
        for cid, tids in changed.items():  # a cache that takes pairs gets every club's again
            self._active[cid] = list(tids)  # type: ignore[call-overload]
        self.cache.warm((cid, tid) for cid, tids in self._active.items() for tid in tids)

    def flush(self) -> int:
        """Write buffered last_seen (and message evidence) in one round trip: interval and shutdown."""
        if not self.last_seen and not self.first_seen:
            self.store.settle()
            return 0
        seen, self.last_seen = self.last_seen, {}
        first, self.first_seen = self.first_seen, {}
        since, self.active_since = self.active_since, {}
        try:
            return self.store.flush_last_seen(seen, first, since)
        except Exception:
            for k, v in since.items():  # nothing accepted is lost: keep for the next flush
                self.active_since[k] = min(v, self.active_since.get(k, v))
            for k, v in seen.items():
                self._seen(k, v)
            for k, v in first.items():
                self._seen(k, v)
            raise

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info(text)

    def handle(self, event) -> None:
        kind = type(event)
        if kind is MessageSeen:
            self.on_message(event)
        elif kind is MemberStatusChanged:
            self.on_member_status(event)
        elif kind is BotStatusChanged:
            self.on_bot_status(event)
        elif kind is DeepLinkStart:
            self.on_start(event)
        elif kind is ChatMigrated:
            self.on_migrated(event)
        elif kind is RosterObserved:
            info = self.club(event.chat.id)
            if info is not None:
                self.apply_roster(info, event.entries, event.at, event.source, event.complete)
        elif kind is BotStatusRecheck:
            self.startup_check(event.at)
        else:
            raise TypeError(f"not an event: {event!r}")

    # -- clubs ------------------------------------------------------------------------------
    def _remember(self, doc: dict) -> ClubInfo:
        sync = doc.get("sync") or {}
        info = ClubInfo(doc["_id"], doc["telegram_group_id"], doc.get("name", ""),
                        bool(sync.get("bot_is_admin")), bool(sync.get("bot_present")),
                        doc.get("username") or sync.get("username"))
        self._clubs[info.chat_id] = info
        for old in doc.get("previous_group_ids") or ():
            self._clubs[old] = info
        self._unknown.pop(info.chat_id, None)
        return info

    def club(self, chat_id: int, discover: bool = True) -> Optional[ClubInfo]:
        """From memory; unknown chats are asked of the store, and of Telegram (is it a supergroup
        whose basic group we knew, migrated while we were not looking?), at most once a minute."""
        info = self._clubs.get(chat_id)
        if info is not None:
            return info
        until = self._unknown.get(chat_id)
        if until is not None and until > time.monotonic():
            return None
        doc = self.store.club_by_group(chat_id)
        if doc is None:
            # marked before asking Telegram, so following the migration cannot ask again
            self._unknown[chat_id] = time.monotonic() + UNKNOWN_CLUB_TTL
            return self.discover_migration(chat_id) if discover else None
        return self._remember(doc)

    def clubs(self) -> List[ClubInfo]:
        seen, out = set(), []
        for info in self._clubs.values():
            if info.club_id not in seen:
                seen.add(info.club_id)
                out.append(info)
        return out










    # -- messages (route 4) -------------------------------------------------------------------
    def holds_active(self, chat_id: int, telegram_id: int) -> bool:
        """Memory only, so another thread (serve's update loop) may ask: is this a known club's
        member the cache holds as active? A stale answer costs speed, never correctness: the
        message still comes through handle()."""
        info = self._clubs.get(chat_id)
        local = getattr(self.cache, "is_active_local", None)
        return info is not None and local is not None and local(info.club_id, telegram_id)

    def on_message(self, ev: MessageSeen) -> None:
        s = ev.sender
        if (s is None or ev.sender_chat_id is not None or ev.is_automatic_forward
                or ev.chat.type in ("private", "channel") or not is_person(s, self.bot_id)):
            return
        info = self._clubs.get(ev.chat.id) or self.club(ev.chat.id)
        if info is None:
            return
        if ev.chat.username is not None and ev.chat.username != info.username:
            self.note_username(info, ev.chat.username)  # in memory unless it changed
        key = (info.club_id, s.id)
        if self.cache.is_active(info.club_id, s.id):  # hot path: no store, no network
            self._seen(key, ev.at)
            return
        out = self.store.observe(info.club_id, Observation(
            s, ACTIVE, None, ev.at, "message_activity", strictly_newer=True))
        if out.status == ACTIVE:
            self.cache.add(info.club_id, s.id)
            since = self.active_since.get(key)
            if out.status_applied or since is None or ev.at < since:
                # this message made them active (later ones count from it), or is evidence of it
                # (the store only lets it lower status_at for someone active by messages alone)
                self.active_since[key] = ev.at
            self._seen(key, ev.at)
        elif out.created:
            self._seen(key, ev.at)

    def _seen(self, key: Tuple[str, int], at: datetime) -> None:
        prev = self.last_seen.get(key)
        if prev is None or at > prev:
            self.last_seen[key] = at
        first = self.first_seen.get(key)
        if first is None or at < first:
            self.first_seen[key] = at
        since = self.active_since.get(key)
        if since is None or at < since:
            self.active_since[key] = at








