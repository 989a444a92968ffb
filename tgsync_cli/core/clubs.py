"""The club directory: which club a chat id names, kept in memory, and where groups went.

Clubs are found by their current group id and by any id the group had before it became a
supergroup, so deep links posted with the old id keep working. A chat with no club is asked of
the store every time (another process may have created its club a moment ago: no negative
answer is kept that its write could make wrong), and of Telegram (is it the supergroup a known
basic group became while the bot was not looking?) at most once a minute. Any Telegram call
naming a club's group goes through `tg`, which follows a migration Telegram reports and makes the
call once more at the new id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar

from tgsync_cli.core.cache import MemberCache
from tgsync_cli.core.errors import ChatMigratedError, TelegramError
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.join_policy import policy_of
from tgsync_cli.core.models import ClubInfo
from tgsync_cli.core.store import Store

UNKNOWN_CLUB_TTL = 60.0

Note = Callable[[str], None]
T = TypeVar("T")


@dataclass
class BotSelf:
    """Who the bot is, as far as this process knows: learnt from Telegram when not configured."""

    id: Optional[int] = None
    username: Optional[str] = None


class ClubDirectory:
    def __init__(self, store: Store, gateway: TelegramGateway, cache: MemberCache, note: Note) -> None:
        self.store = store
        self.gateway = gateway
        self.cache = cache
        self.note = note
        self._by_chat: Dict[int, ClubInfo] = {}
        self._unknown: Dict[int, float] = {}     # chat id → until when Telegram is not asked again
        self._versions: Dict[str, int] = {}      # club id → version read by the last start()
        self._active: Dict[str, List[int]] = {}  # club id → active ids read with that version

    # -- start-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        """One query: the club map and the warm member cache (a restart costs one round trip).
        Called again to re-warm, it re-reads only clubs whose version moved since."""
        idx = self.store.club_index(self._versions or None)
        changed: Dict[str, Any] = {}
        for doc in idx.clubs:
            info = self.remember(doc)
            self._versions[info.club_id] = doc.get("version", 0)
            changed[info.club_id] = doc.get("active", ())
        for cid in idx.removed:
            self._versions.pop(cid, None)
            self._active.pop(cid, None)
        warm_clubs = getattr(self.cache, "warm_clubs", None)
        if warm_clubs is not None:  # a per-club cache: only what changed is rebuilt
            warm_clubs(changed, unchanged=list(self._versions), removed=idx.removed)
            return
        for cid, tids in changed.items():  # a cache of pairs is given every club's again
            self._active[cid] = list(tids)
        self.cache.warm((cid, tid) for cid, tids in self._active.items() for tid in tids)

    def versions(self) -> Dict[str, int]:
        """Each club's version as the last start() read it (what a re-warm compares with)."""
        return dict(self._versions)

    # -- lookups ----------------------------------------------------------------------------------
    def remember(self, doc: Mapping[str, Any]) -> ClubInfo:
        sync = doc.get("sync") or {}
        info = ClubInfo(doc["_id"], doc["telegram_group_id"], doc.get("name", ""),
                        bool(sync.get("bot_is_admin")), bool(sync.get("bot_present")),
                        doc.get("username") or sync.get("username"))
        info.join_policy = policy_of(doc)
        info.bot_can_invite = sync.get("bot_can_invite_users")
        self._by_chat[info.chat_id] = info
        for old in doc.get("previous_group_ids") or ():
            self._by_chat[old] = info
        self._unknown.pop(info.chat_id, None)
        return info

    def known(self, chat_id: int) -> Optional[ClubInfo]:
        """From memory only: no store, no Telegram (the hot path, the Celery router)."""
        return self._by_chat.get(chat_id)

    def club(self, chat_id: int, discover: bool = True) -> Optional[ClubInfo]:
        """From memory; unknown chats are asked of the store (every time: a club another
        process created must be found at once), and of Telegram (is it a supergroup whose basic
        group we knew, migrated while we were not looking?) at most once a minute."""
        info = self._by_chat.get(chat_id)
        if info is not None:
            return info
        doc = self.store.club_by_group(chat_id)
        if doc is not None:
            return self.remember(doc)
        until = self._unknown.get(chat_id)
        if not discover or (until is not None and until > time.monotonic()):
            return None
        # marked before asking Telegram, so following the migration cannot ask again
        self._unknown[chat_id] = time.monotonic() + UNKNOWN_CLUB_TTL
        return self.discover_migration(chat_id)

    def clubs(self) -> List[ClubInfo]:
        seen, out = set(), []
        for info in self._by_chat.values():
            if info.club_id not in seen:
                seen.add(info.club_id)
                out.append(info)
        return out

    # -- what the club's group is now ---------------------------------------------------------------
    def set_bot_status(self, info: ClubInfo, admin: bool, present: bool) -> None:
        info.bot_is_admin, info.bot_present = admin, present

    def note_username(self, info: ClubInfo, username: str) -> None:
        """A public group's @username, as its chat object says: `roster @name` finds the club."""
        self.store.set_club_username(info.club_id, username)
        info.username = username

    def migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup: the club keeps its id and members, under the new id."""
        info = self.club(old_chat_id, discover=False)
        if info is None or info.chat_id == new_chat_id:
            return  # unknown, or the second of the two migration messages
        if self.club(new_chat_id, discover=False) not in (None, info):
            self.note(f"chat {old_chat_id} migrated to {new_chat_id}, which already has a club: "
                      "both kept, run reconcile")
            return
        self.store.migrate_club(info.club_id, old_chat_id, new_chat_id)
        info.chat_id = new_chat_id
        self._by_chat[new_chat_id] = info
        self._unknown.pop(new_chat_id, None)

    def discover_migration(self, chat_id: int) -> Optional[ClubInfo]:
        """A chat with no club: if Telegram says it is the supergroup a known basic group became
        (full info's `migrated_from_chat_id`), the missed migration is applied now."""
        try:
            chat = self.gateway.chat_info(chat_id)
        except TelegramError:
            return None  # not reachable, or not a chat the bot is in: nothing to follow
        if chat.migrated_from is None:
            return None
        if self.club(chat.migrated_from, discover=False) is None:
            return None
        self.note(f"chat {chat.migrated_from} became supergroup {chat_id} while the bot was not "
                  "looking: the club follows it")
        self.migrate(chat.migrated_from, chat_id)
        return self._by_chat.get(chat_id)

    def tg(self, info: ClubInfo, call: Callable[..., T], *args: Any) -> T:
        """`call(info.chat_id, *args)`; when Telegram answers that the group became a supergroup
        (a migration the bot missed), the club follows it and the call is made once more there."""
        try:
            return call(info.chat_id, *args)
        except ChatMigratedError as exc:
            old = info.chat_id
            self.note(f"chat {old} became supergroup {exc.new_chat_id} while the bot was not "
                      "looking: the club follows it")
            self.migrate(old, exc.new_chat_id)
            if info.chat_id == old:
                raise  # both ids have clubs: kept apart (noted), nothing to retry
            return call(info.chat_id, *args)
