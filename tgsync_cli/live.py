"""One-shot commands against live Telegram: import-admins, import-members, post-invite.

Each call checks the credentials before anything else (a missing key is refused before the store
or the network is touched), opens the store, connects a pyrogram client on a background loop
with updates switched off (a one-shot run must not consume the updates `serve` is waiting for),
runs one engine method and disconnects. The client uses the same session as `serve`: it holds the
access hashes of the groups the bot has met, without which Telegram answers PEER_ID_INVALID.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, ContextManager, Iterator, Optional

from pyrogram import enums, errors

from tgsync_cli.app import make_engine, store_from, utcnow
from tgsync_cli.config import Settings
from tgsync_cli.engine import ClubInfo, Engine, RosterResult
from tgsync_cli.errors import (BotNotInChat, ConfigError, InputError, PeerUnknown, TelegramError,
                               TelegramUnavailable, TgsyncError)
from tgsync_cli.rules import deep_link
from tgsync_cli.telegram.client import bot_id_from_token, check_credentials, make_client
from tgsync_cli.telegram.gateway import BackgroundLoop, PyrogramGateway

_NUMERIC = re.compile(r"^-?\d{1,20}$")
_USERNAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}$")
_GROUP_TYPES = (enums.ChatType.GROUP, enums.ChatType.SUPERGROUP, enums.ChatType.FORUM)


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


@dataclass
class Connection:
    """A connected gateway plus the one extra question the commands ask: a chat's id and title."""

    gateway: object
    chat_info: Callable[[object], tuple]  # "@name" or id → (chat_id, title); raises TgsyncError


Connector = Callable[[Settings], ContextManager[Connection]]


# -- starting a client ----------------------------------------------------------------------------
async def start_client(client) -> None:
    """`client.start()` with Telegram's refusals turned into one-line errors naming the setting."""
    try:
        await client.start()
    except (errors.AccessTokenInvalid, errors.AccessTokenExpired, errors.BotMethodInvalid) as e:
        raise ConfigError(f"telegram.bot_token was refused by Telegram ({e.ID}); "
                          "check it with @BotFather") from None
    except (errors.ApiIdInvalid, errors.ApiIdPublishedFlood) as e:
        raise ConfigError(f"telegram.api_id / telegram.api_hash were refused by Telegram ({e.ID}); "
                          "check them at my.telegram.org") from None
    except errors.AuthKeyUnregistered as e:
        raise ConfigError(f"the session in telegram.session_dir is no longer valid ({e.ID}); "
                          "remove the .session file and start again") from None
    except errors.FloodWait as e:
        raise TelegramError(f"Telegram asks to wait {e.value} s before logging in again") from None
    except (ConnectionError, OSError, asyncio.TimeoutError) as e:
        raise TelegramUnavailable(f"Telegram is not reachable: {type(e).__name__}") from None
    except errors.RPCError as e:
        raise TelegramError(f"Telegram refused the login: {getattr(e, 'ID', type(e).__name__)}") from None


@contextmanager
def pyrogram_connection(settings: Settings) -> Iterator[Connection]:
    """A started client on a background loop, updates off; stopped on the way out."""
    t = settings.telegram
    with BackgroundLoop() as bg:
        client = make_client(t.api_id, t.api_hash, t.bot_token, t.session_dir, loop=bg.loop)
        client.no_updates = True  # read at start(): this run takes no updates away from `serve`
        bg.run(start_client(client))
        try:
            gateway = PyrogramGateway(client, bg.loop, max_flood_wait=t.max_flood_wait)
            yield Connection(gateway, lambda chat: chat_info(gateway, chat))
        finally:
            try:
                bg.run(client.stop())
            except Exception:  # disconnecting is best effort; the work is already done
                pass


def chat_info(gateway: PyrogramGateway, chat) -> tuple:
    """(chat_id, title) of a group from Telegram; refuses users and channels."""
    async def get():
        return await gateway.client.get_chat(chat)

    try:
        c = gateway._chat_call("looking up the chat", chat, get, peers=str(chat))
    except TelegramError as exc:
        if isinstance(chat, str) and "USERNAME" in str(exc):
            raise InputError(f"{chat} is not a Telegram username") from None
        raise
    if c.type not in _GROUP_TYPES:
        raise InputError(f"{chat} is a {c.type.name.lower()}, not a group")
    return c.id, c.title or str(c.id)


# -- CHAT ----------------------------------------------------------------------------------------
def parse_chat(chat: str) -> str:
    """Refuse what can never be a group before anything is opened."""
    text = (chat or "").strip()
    if _NUMERIC.match(text):
        if int(text) >= 0:
            raise InputError(f"CHAT {text}: a group's chat id is negative (-100… for a supergroup)")
        return text
    if _USERNAME.match(text):
        return text
    raise InputError(f"CHAT {chat!r}: expected a numeric chat id (-100…) or an @username")


def _club(engine: Engine, conn: Connection, chat: str) -> tuple:
    """The club for CHAT, created from Telegram's chat title when the bot is in a group with none.

    A group the bot joined while `serve` was down has no club; these commands are how an operator
    catches up, so they create it rather than refuse (Telegram proves the bot can see the group).
    """
    store = engine.store
    if _NUMERIC.match(chat):
        chat_id = int(chat)
        doc = store.club_by_group(chat_id)
    else:
        doc = store.clubs.find_one({"username": chat[1:]})
        chat_id = doc["telegram_group_id"] if doc else None
    title = None
    if doc is None:
        chat_id, title = conn.chat_info(chat_id if chat_id is not None else chat)
        doc = store.club_by_group(chat_id)
    created = False
    if doc is None:
        doc, created = store.create_club(chat_id, title, None, {"bot_present": True})
    info = engine.club(doc["telegram_group_id"])
    if info is None:  # pragma: no cover - the store just returned it
        raise TgsyncError(f"no club for {chat}")
    return info, created


@contextmanager
def _session(settings: Settings, chat: str, connect: Optional[Connector]):
    """Credentials, then CHAT's shape, then the store, then Telegram: cheapest refusal first."""
    t = settings.telegram
    check_credentials(t.api_id, t.api_hash, t.bot_token)
    chat = parse_chat(chat)
    store = store_from(settings)
    try:
        with (connect or pyrogram_connection)(settings) as conn:
            engine = make_engine(store, conn.gateway, settings, bot_id=bot_id_from_token(t.bot_token))
            info, created = _club(engine, conn, chat)
            yield engine, info, created
            engine.flush()
    finally:
        store.close()


def _summary(info: ClubInfo, created: bool, r: RosterResult) -> ImportSummary:
    return ImportSummary(info.club_id, info.chat_id, info.name, created, r.added, r.updated,
                         r.unchanged, r.skipped, len(r.listed_ids) + r.skipped)


# -- the commands' cores ---------------------------------------------------------------------------
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
            total = engine.gateway.member_count(info.chat_id)
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
