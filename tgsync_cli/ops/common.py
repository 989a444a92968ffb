"""What every operator command shares: the live gateway, CHAT as Telegram's id."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Iterator

from tgsync_cli.core.chat_ids import parse_chat
from tgsync_cli.runtime import wiring as core
from tgsync_cli.runtime.config import Settings
from tgsync_cli.core.store import Store
from tgsync_cli.core.evidence import ACTIVE  # noqa: F401 (the ops modules take it from here)


PUSH_CHUNK = 1000  # members per atomic push: ~200 KB, far below MongoDB's 16 MB document limit


GatewayFactory = Callable[[Settings], ContextManager[Any]]


@contextmanager
def gateway_for(settings: Settings) -> Iterator[Any]:
    """A started PyrogramGateway for one-shot commands, stopped on exit. It is the live commands'
    connection (credentials checked before connecting, updates off so `serve` keeps receiving
    them, Telegram's login refusals named by setting, never by value)."""
    from tgsync_cli.runtime.live import pyrogram_connection

    with pyrogram_connection(settings) as conn:
        yield conn.gateway


def resolve_chat_id(store: Store, chat: str) -> int:
    """CHAT as Telegram's id: numeric ids pass as given (the club may not exist yet)."""
    arg = parse_chat(chat)
    if arg.chat_id is not None:
        return arg.chat_id
    return core.find_club(store, arg.text)["telegram_group_id"]


