"""One-shot commands against live Telegram: import-admins, import-members, post-invite (each
checks credentials first, then runs one engine method)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Optional

from tgsync_cli.core.chat_ids import ChatArg
from tgsync_cli.core.engine import ClubInfo, Engine, RosterResult
from tgsync_cli.core.errors import (
    BotNotInChat,
    PeerUnknown,
    TelegramError,
    TgsyncError,
)
from tgsync_cli.core.rules import deep_link
from tgsync_cli.runtime.config import Settings
from tgsync_cli.runtime.live import (
    Connection,
    Connector,
    parse_chat,
    pyrogram_connection,
)
from tgsync_cli.runtime.telegram_client import (
    bot_id_from_token,
    check_credentials,
)
from tgsync_cli.runtime.wiring import make_engine, store_from, utcnow


@dataclass
class ImportSummary:
    """What one import changed; `skipped` are bots and Telegram's stand-in senders."""

    club_id: str
    chat_id: int
    name: str
    club_created: bool
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    listed: int = 0

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class InviteSummary:
    club_id: str
    chat_id: int
    name: str
    club_created: bool
    link: str

    def as_json(self) -> dict:
        return asdict(self)


def _club(engine: Engine, conn: Connection, chat: ChatArg) -> tuple:
    """The club for CHAT, created from Telegram's chat title when the bot is in a group with none.

    A group the bot joined while `serve` was down has no club; these commands are how an operator
    catches up, so they create it rather than refuse (Telegram proves the bot can see the group).
    """
    store = engine.store
    if chat.chat_id is not None:
        doc = store.club_by_group(chat.chat_id)
    else:
        doc = store.club_by_username(chat.username or "")
    created = False
    if doc is None:
        chat_id, title = conn.chat_info(chat.chat_id if chat.chat_id is not None else chat.text)
        doc = store.club_by_group(chat_id)
        if doc is not None and chat.username:
            store.set_club_username(doc["_id"], chat.username)  # the next @username lookup is an index hit
        if doc is None:
            doc, created = store.create_club(chat_id, title, None, {"bot_present": True},
                                             username=chat.username)
    info = engine.club(doc["telegram_group_id"])
    if info is None:  # pragma: no cover - the store just returned it
        raise TgsyncError(f"no club for {chat.text}")
    return info, created


@contextmanager
def _session(settings: Settings, chat: str, connect: Optional[Connector]):
    """Credentials, then CHAT's shape, then the store, then Telegram: cheapest refusal first."""
    t = settings.telegram
    check_credentials(t.api_id, t.api_hash, t.bot_token)
    arg = parse_chat(chat)
    store = store_from(settings)
    try:
        with (connect or pyrogram_connection)(settings) as conn:
            engine = make_engine(store, conn.gateway, settings, bot_id=bot_id_from_token(t.bot_token))
            info, created = _club(engine, conn, arg)
            yield engine, info, created
            engine.flush()
    finally:
        store.close()


def _summary(info: ClubInfo, created: bool, r: RosterResult) -> ImportSummary:
    return ImportSummary(info.club_id, info.chat_id, info.name, created, r.added, r.updated,
                         r.unchanged, r.skipped, len(r.listed_ids) + r.skipped)


def import_admins(settings: Settings, chat: str, *, connect: Optional[Connector] = None) -> ImportSummary:
    """Route 1 for a group the bot is already in: admins become organizers."""
    with _session(settings, chat, connect) as (engine, info, created):
        result = engine.import_admins(info, utcnow())
        if result is None:  # the engine notes Telegram's refusal instead of raising
            raise TelegramError(engine.notes[-1] if engine.notes else "admin import failed")
        return _summary(info, created, result)


def import_members(settings: Settings, chat: str,
                   progress: Optional[Callable[[int, Optional[int]], None]] = None, *,
                   connect: Optional[Connector] = None) -> ImportSummary:
    """Route 6: every member Telegram lists, one bulk write per page.

    `progress(done, total)` is called once before the first page (done=0) and after each page;
    `total` is Telegram's member count, or None when it cannot be had.
    """
    with _session(settings, chat, connect) as (engine, info, created):
        total: Optional[int] = None
        try:
            total = engine.tg(info, engine.gateway.member_count)  # follows a missed migration
        except (BotNotInChat, PeerUnknown):
            raise
        except TelegramError:
            total = None  # a count is only for the progress bar
        done = 0
        if progress:
            progress(0, total)

        def page_done(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        result = engine.import_members(info, utcnow(), page_done)
        return _summary(info, created, result)


def post_invite(settings: Settings, chat: str, *, connect: Optional[Connector] = None) -> InviteSummary:
    """Route 2: the message with the deep-link button, posted into the group."""
    with _session(settings, chat, connect) as (engine, info, created):
        if not engine.post_invite(info):
            raise TelegramError(engine.notes[-1] if engine.notes else "invite not posted")
        return InviteSummary(info.club_id, info.chat_id, info.name, created,
                             deep_link(engine.bot_username, info.chat_id))


