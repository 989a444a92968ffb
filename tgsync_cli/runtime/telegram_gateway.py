"""`PyrogramGateway`: the engine's synchronous TelegramGateway on top of pyrogram's async Client.

The engine runs in a worker thread while pyrogram's event loop runs elsewhere, so every call is
submitted to that loop with `run_coroutine_threadsafe(...).result()`. Calling it from the loop's
own thread would deadlock, so that is refused. Telegram errors become the core's typed errors;
FloodWait is waited out (logged, capped by `max_flood_wait`), in the caller's thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from typing import Any, Awaitable, Callable, Coroutine, Iterator, List, Optional, Sequence, TypeVar

from pyrogram import enums, errors, raw, types

from tgsync_cli.core.errors import (
    AdminRequired,
    AlreadyParticipant,
    BotNotInChat,
    CannotRemove,
    ChatMigratedError,
    JoinRequestMissing,
    PeerUnknown,
    TelegramError,
    TelegramUnavailable,
)
from tgsync_cli.core.events import MemberState, Person
from tgsync_cli.core.gateway import BotIdentity, ChatInfo, ChatMemberInfo
from tgsync_cli.sources.pyrogram_updates import chat_ref, person_from_user, state_from_member

log = logging.getLogger("tgsync.telegram")
T = TypeVar("T")
PAGE_SIZE = 200  # what pyrogram's get_chat_members asks per request (methods/chats/get_chat_members.py)
MAX_FLOOD_RETRIES = 5

_ADMIN_ERRORS = (errors.ChatAdminRequired, errors.RightForbidden, errors.ChatWriteForbidden,
                 errors.ChatRestricted, errors.ChatSendPlainForbidden, errors.ChatAdminInviteRequired)
_NOT_IN_CHAT = (errors.ChannelPrivate, errors.ChatIdInvalid, errors.ChannelInvalid,
                errors.UserNotParticipant, errors.ChatForbidden)
_DM_REFUSED = (errors.UserIsBlocked, errors.PeerIdInvalid, errors.InputUserDeactivated,
               errors.UserDeactivated, errors.UserIdInvalid, errors.UserIsBot, errors.UserBotInvalid)


class BackgroundLoop:
    """An event loop in a daemon thread: for tests and one-shot CLI commands (not `serve`)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tgsync-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()

    def __enter__(self) -> "BackgroundLoop":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PyrogramGateway:
    def __init__(self, client, loop: asyncio.AbstractEventLoop, *, max_flood_wait: float = 60,
                 sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.loop = loop
        self.max_flood_wait = max_flood_wait
        self._sleep = sleep

    def __repr__(self) -> str:  # never the client's repr: it holds the token
        return f"PyrogramGateway(max_flood_wait={self.max_flood_wait})"

    # -- bridge ---------------------------------------------------------------------------------
    def _call(self, what: str, factory: Callable[[], Awaitable[T]]) -> T:
        """Run `factory()` on the client's loop; FloodWait below the cap is slept off and retried."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("PyrogramGateway is synchronous: call it from a worker thread")
        for _ in range(MAX_FLOOD_RETRIES):
            try:
                return asyncio.run_coroutine_threadsafe(_in_loop(factory), self.loop).result()
            except (ConnectionError, OSError, asyncio.TimeoutError) as e:
                raise TelegramUnavailable(f"Telegram is not reachable ({what}): "
                                          f"{type(e).__name__}") from None
            except (errors.FloodWait, errors.FloodPremiumWait) as e:
                wait = int(e.value or 0) if isinstance(e.value, (int, str)) else 0
                if wait > self.max_flood_wait:
                    raise TelegramError(
                        f"Telegram asks to wait {wait} s before {what}, more than max_flood_wait "
                        f"({self.max_flood_wait:g} s); try again later") from None
                log.warning("flood wait: sleeping %s s before %s (Telegram's request)", wait, what)
                self._sleep(wait)
        raise TelegramError(f"Telegram kept asking to wait before {what}; try again later")

    def _chat_call(self, what: str, chat_id: int, factory: Callable[[], Awaitable[T]],
                   peers: str = "") -> T:
        try:
            return self._call(what, factory)
        except (errors.RPCError, ValueError) as e:
            # MTProto has no "group was upgraded" error (the Bot API's migrate_to_chat_id is
            # its server's doing): a refused call naming a basic group asks whether it migrated
            if _is_basic_group(chat_id):
                self._raise_if_migrated(chat_id)
            raise _typed(e, what, chat_id, peers) from None

    def _raise_if_migrated(self, chat_id: int) -> None:
        """A basic group's chat object carries `migrated_to` once it has become a supergroup."""
        try:
            chat = self._call("looking up the chat", lambda: self._basic_group_async(chat_id))
        except (errors.RPCError, TelegramError, ValueError):
            return  # the lookup failing says nothing: the original refusal stands
        to = getattr(chat, "migrated_to", None)
        if isinstance(to, raw.types.InputChannel):
            raise ChatMigratedError(chat_id, -(10**12 + to.channel_id))

    # -- TelegramGateway --------------------------------------------------------------------------
    def chat_info(self, chat_id: int) -> ChatInfo:
        if _is_basic_group(chat_id):
            chat = self._chat_call("looking up the chat", chat_id, lambda: self._basic_group_async(chat_id))
            to = getattr(chat, "migrated_to", None)
            return ChatInfo(chat_id, "group", getattr(chat, "title", None),
                            migrated_to=(-(10**12 + to.channel_id)
                                         if isinstance(to, raw.types.InputChannel) else None))
        chat = self._chat_call("looking up the chat", chat_id, lambda: self.client.get_chat(chat_id))
        ref = chat_ref(chat)
        frm = getattr(chat, "migrated_from_chat_id", None)  # ChannelFull: the bare basic-group id
        return ChatInfo(ref.id, ref.type, ref.title, ref.username,
                        migrated_from=-abs(frm) if frm else None)

    async def _basic_group_async(self, chat_id: int):
        r = await self.client.invoke(raw.functions.messages.GetChats(id=[-chat_id]))
        return next((c for c in r.chats if c.id == -chat_id), None)

    def me(self) -> BotIdentity:
        user = self._call("identifying the bot", self.client.get_me)
        return BotIdentity(user.id, user.username or "", None)

    def get_admins(self, chat_id: int) -> List[ChatMemberInfo]:
        async def admins():
            return [m async for m in self.client.get_chat_members(
                chat_id, filter=enums.ChatMembersFilter.ADMINISTRATORS)]
        # for a basic group pyrogram ignores the filter (one GetFullChat lists everyone): filter here
        infos = [_info(m) for m in self._chat_call("listing admins", chat_id, admins) if m.user]
        return [i for i in infos if i.state.status in ("creator", "administrator")]

    def get_member(self, chat_id: int, user_id: int) -> ChatMemberInfo:
        async def lookup():
            # USER_NOT_PARTICIPANT is about the user here (pyrogram raises it itself for basic groups)
            try:
                return await self.client.get_chat_member(chat_id, user_id)
            except errors.UserNotParticipant:
                return None
        m = self._chat_call("checking a member", chat_id, lookup,
                            peers=f"chat {chat_id} or user {user_id}")
        if m is None and _is_basic_group(chat_id):
            # a migrated basic group lists nobody: "not a participant" may mean "moved"
            self._raise_if_migrated(chat_id)
        if m is None or m.user is None:
            return ChatMemberInfo(Person(id=user_id), MemberState("left"))
        return _info(m)

    def iter_member_pages(self, chat_id: int) -> Iterator[Sequence[ChatMemberInfo]]:
        """Pages of up to 200, fetched lazily; a FloodWait retries the same offset, not page one."""
        peer = self._chat_call("listing members", chat_id, lambda: self.client.resolve_peer(chat_id))
        if isinstance(peer, raw.types.InputPeerChat):  # basic group: one GetFullChat has everyone
            async def everyone():
                return [m async for m in self.client.get_chat_members(chat_id)]
            yield [_info(m) for m in self._chat_call("listing members", chat_id, everyone) if m.user]
            return
        offset = 0
        while True:
            page = self._chat_call("listing members", chat_id,
                                   functools.partial(self._participants, peer, offset))
            if not page:
                return
            offset += len(page)
            yield [_info(m) for m in page if m.user]

    async def _participants(self, peer, offset: int):
        """The request pyrogram's get_chat_members makes (its `get_chunk`), one page at a time."""
        r = await self.client.invoke(raw.functions.channels.GetParticipants(
            channel=peer, filter=raw.types.ChannelParticipantsSearch(q=""), offset=offset,
            limit=PAGE_SIZE, hash=0))
        users = {u.id: u for u in r.users}
        chats = {c.id: c for c in r.chats}
        return [await types.ChatMember._parse(self.client, p, users, chats) for p in r.participants]

    def member_count(self, chat_id: int) -> int:
        return int(self._chat_call("counting members", chat_id,
                                   lambda: self.client.get_chat_members_count(chat_id)))

    def send_group_message(self, chat_id: int, text: str, button_text: Optional[str] = None,
                           button_url: Optional[str] = None) -> None:
        markup = None
        if button_url:
            markup = types.InlineKeyboardMarkup(
                [[types.InlineKeyboardButton(button_text or button_url, url=button_url)]])
        self._chat_call("posting a message", chat_id, lambda: self.client.send_message(
            chat_id, text, parse_mode=enums.ParseMode.DISABLED, reply_markup=markup))

    def send_private(self, user_id: int, text: str, button_text: Optional[str] = None,
                     button_url: Optional[str] = None) -> bool:
        markup = None
        if button_url:
            markup = types.InlineKeyboardMarkup(
                [[types.InlineKeyboardButton(button_text or button_url, url=button_url)]])
        try:
            self._call("sending a private message", lambda: self.client.send_message(
                user_id, text, parse_mode=enums.ParseMode.DISABLED, reply_markup=markup))
        except _DM_REFUSED as e:
            log.info("private message to %s not delivered: %s", user_id, _code(e))
            return False
        except errors.RPCError as e:
            raise TelegramError(f"Telegram refused a private message to {user_id}: {_code(e)}") from None
        return True


    # -- join requests and removals ---------------------------------------------------------------
    def approve_join_request(self, chat_id: int, user_id: int) -> None:
        self._join_answer("approving a join request", chat_id, user_id,
                          lambda: self.client.approve_chat_join_request(chat_id, user_id))

    def decline_join_request(self, chat_id: int, user_id: int) -> None:
        self._join_answer("declining a join request", chat_id, user_id,
                          lambda: self.client.decline_chat_join_request(chat_id, user_id))

    def _join_answer(self, what: str, chat_id: int, user_id: int, factory) -> None:
        try:
            self._call(what, factory)
        except errors.HideRequesterMissing:
            raise JoinRequestMissing(f"no join request from {user_id} is pending in chat {chat_id}") from None
        except errors.UserAlreadyParticipant:
            raise AlreadyParticipant(f"user {user_id} is already in chat {chat_id}") from None
        except (errors.RPCError, ValueError) as e:
            raise _typed(e, what, chat_id, f"chat {chat_id} or user {user_id}") from None

    def ban_member(self, chat_id: int, user_id: int) -> None:
        try:
            self._call("removing a member", lambda: self.client.ban_chat_member(chat_id, user_id))
        except (errors.UserAdminInvalid, errors.UserCreator) as e:
            raise CannotRemove(f"Telegram will not ban user {user_id} in chat {chat_id}: {_code(e)}") from None
        except (errors.RPCError, ValueError) as e:
            raise _typed(e, "removing a member", chat_id, f"chat {chat_id} or user {user_id}") from None

    def unban_member(self, chat_id: int, user_id: int) -> None:
        try:
            self._call("lifting a ban", lambda: self.client.unban_chat_member(chat_id, user_id))
        except (errors.RPCError, ValueError) as e:
            raise _typed(e, "lifting a ban", chat_id, f"chat {chat_id} or user {user_id}") from None


async def _in_loop(factory):
    """Call `factory` on the loop's thread: pyrogram's sync wrappers (pyrogram/sync.py) would run a
    Client method called from our worker thread to completion there and hand back a result, not a
    coroutine."""
    return await factory()


def _typed(e: Exception, what: str, chat_id: int, peers: str) -> TelegramError:
    """A refusal as the core's typed error, worded for the operator."""
    if isinstance(e, errors.PeerIdInvalid):
        return PeerUnknown(f"Telegram does not know {peers or f'chat {chat_id}'} to the bot "
                           f"({what}); the bot must have met it first")
    if isinstance(e, _ADMIN_ERRORS):
        return AdminRequired(f"{what} in chat {chat_id} needs the bot to be an admin")
    if isinstance(e, _NOT_IN_CHAT):
        return BotNotInChat(f"the bot is not a member of chat {chat_id} ({what})")
    if isinstance(e, errors.RPCError):
        return TelegramError(f"Telegram refused {what} in chat {chat_id}: {_code(e)}")
    return TelegramError(f"{what} in chat {chat_id}: {e}")  # pyrogram's own checks (ValueError)


def _is_basic_group(chat_id: int) -> bool:
    """Bot API ids: basic groups are -id, supergroups and channels -(10^12 + id)."""
    return -10**12 < chat_id < 0


def _info(member) -> ChatMemberInfo:
    rights = getattr(member, "privileges", None)
    can_invite = None
    if member.status == enums.ChatMemberStatus.OWNER:
        can_invite = True
    elif rights is not None:
        can_invite = bool(getattr(rights, "can_invite_users", False))
    return ChatMemberInfo(person_from_user(member.user), state_from_member(member), can_invite)


def _code(e: Exception) -> str:
    return getattr(e, "ID", None) or type(e).__name__
