"""One-shot commands against live Telegram: import-admins, import-members, post-invite.

Each call checks the credentials before anything else (a missing key is refused before the store
or the network is touched), opens the store, connects a pyrogram client on a background loop
with updates switched off (a one-shot run must not consume the updates `serve` is waiting for),
runs one engine method and disconnects. The client uses the same session as `serve`: it holds the
access hashes of the groups the bot has met, without which Telegram answers PEER_ID_INVALID.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, Tuple

from pyrogram import enums, errors

from tgsync_cli.core import chat_ids
from tgsync_cli.core.chat_ids import ChatArg
from tgsync_cli.core.errors import (
    ConfigError,
    InputError,
    TelegramError,
    TelegramUnavailable,
)
from tgsync_cli.runtime.config import Settings
from tgsync_cli.runtime.telegram_client import (
    make_client,
)
from tgsync_cli.runtime.telegram_gateway import BackgroundLoop, PyrogramGateway

_GROUP_TYPES = (enums.ChatType.GROUP, enums.ChatType.SUPERGROUP, enums.ChatType.FORUM)


@dataclass
class Connection:
    """A connected gateway plus the one extra question the commands ask: a chat's id and title."""

    gateway: object
    chat_info: Callable[[object], Tuple[int, str]]  # "@name" or id → (chat_id, title); raises TgsyncError


Connector = Callable[[Settings], ContextManager[Connection]]


# -- starting a client ----------------------------------------------------------------------------
async def start_client(client) -> None:
    """`client.start()` with Telegram's refusals turned into one-line errors naming the setting,
    and a connection failure with its cause (pyrogram logs the cause, then raises it bare)."""
    from tgsync_cli.runtime.logs import LastWords

    with LastWords() as last:
        try:
            await _start(client)
        except TelegramUnavailable as exc:
            cause = last.last or "no answer"
            raise TelegramUnavailable(f"{exc}: {cause}"[:300]) from None


async def _start(client) -> None:
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
        detail = f" ({e})" if str(e) else ""
        raise TelegramUnavailable(f"Telegram is not reachable: {type(e).__name__}{detail}") from None
    except errors.RPCError as e:
        raise TelegramError(f"Telegram refused the login: {getattr(e, 'ID', type(e).__name__)}") from None


@contextmanager
def pyrogram_connection(settings: Settings) -> Iterator[Connection]:
    """A started client on a background loop, updates off; stopped on the way out."""
    t = settings.telegram
    with BackgroundLoop() as bg:
        client = make_client(t.api_id, t.api_hash, t.bot_token, t.session_dir, loop=bg.loop)
        client.no_updates = True  # read at start(): this run takes no updates away from `serve`
        try:
            run_interruptibly(bg, start_client(client))
        except BaseException:
            run_interruptibly(bg, _cancel_others(), grace=1.0)  # nothing left half-connected
            raise
        try:
            gateway = PyrogramGateway(client, bg.loop, max_flood_wait=t.max_flood_wait)
            yield Connection(gateway, lambda chat: chat_info(gateway, chat))
        finally:
            try:
                bg.run(client.stop())
            except Exception:  # disconnecting is best effort; the work is already done
                pass


def run_interruptibly(bg: BackgroundLoop, coro, grace: float = 1.0):
    """`bg.run(coro)`, but Ctrl-C or SIGTERM while it waits (connecting can take 30 s and more)
    cancels it and lets it unwind for up to `grace` seconds before the interrupt goes on."""
    fut = asyncio.run_coroutine_threadsafe(coro, bg.loop)
    try:
        return fut.result()
    except BaseException:
        if not fut.done():
            fut.cancel()
            try:
                fut.result(timeout=grace)
            except BaseException:  # cancelled, or failed while unwinding: the interrupt wins
                pass
        raise


async def _cancel_others() -> None:
    """Cancel what a failed or interrupted start left on the loop, so closing it is quiet."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)


def chat_info(gateway: PyrogramGateway, chat) -> Tuple[int, str]:
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


def parse_chat(chat: str) -> ChatArg:
    """Refuse what can never be a group before anything is opened (Telegram knows no club ids)."""
    return chat_ids.parse_chat(chat, club_ids=False)
