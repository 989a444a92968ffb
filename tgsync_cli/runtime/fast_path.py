"""The raw-update fast path: a known member's group message without pyrogram's message parsing.

Most of what `serve` receives all day is a message from someone the member cache already holds,
and all the engine needs from it is the chat, the sender and the date. pyrogram builds a full
`Message` for it first (`Message._parse`: sender, chat, entities, reply fetching, ...), then runs
the filters, then our adapter: most of the CPU a message costs. This handler reads the raw MTProto
update instead and, when the sender is a cached active member of a known club, builds the very
`MessageSeen` the adapter would have built, hands it to the pipeline and stops the update there.

Where it sits: pyrogram's dispatcher parses an update before it offers it to any handler, so a
`RawUpdateHandler` in an earlier group could not skip the parse. The handler is therefore placed
in front of the dispatcher's parser for new-message updates (`Dispatcher.update_parsers`): taken,
it raises `StopPropagation` (the dispatcher's own way to end an update); not taken, the original
parser runs and every handler sees the update exactly as before.

What it takes, and only that: an incoming ordinary message (not a service message, not
forwarded, not sent on behalf of a chat) in a basic group or supergroup whose raw chat and
sender are in the update, from a sender the engine's memory says is a cached active member of
that chat's club, while the runtime accepts updates normally (no reconnect check pending, not
stopping). Everything else falls through unchanged. The event still goes through the pipeline
and the engine's own rules, in arrival order with every other event, so a stale answer here can
cost only speed, never a different outcome.
"""

from __future__ import annotations

import asyncio
import logging
import queue as queue_mod
import time
from datetime import datetime, timedelta
from typing import Any, Dict, Optional

from pyrogram import StopPropagation, raw

from tgsync_cli.core.events import ChatRef, MessageSeen, Person
from tgsync_cli.core.rules import is_person

log = logging.getLogger("tgsync.serve")

P = raw.types
SUPER = 10**12  # a supergroup with channel id N is chat -(10^12 + N)
MESSAGE_UPDATES = (P.UpdateNewMessage, P.UpdateNewChannelMessage)


def _username(peer) -> Optional[str]:
    """As pyrogram reads it: the username, or the first of the collectible ones."""
    return peer.username or (peer.usernames[0].username if peer.usernames else None)


class _Interned(dict):
    """Equal chats and senders share one frozen object (building one costs more than looking it
    up); bounded by starting over."""

    def get_or_make(self, key: tuple, make):
        obj = self.get(key)
        if obj is None:
            if len(self) >= 50_000:
                self.clear()
            obj = self[key] = make(*key)
        return obj


_CHATS = _Interned()
_PEOPLE = _Interned()
_EPOCH = datetime(1970, 1, 1)
_DATES: Dict[int, datetime] = {}  # unix second -> naive UTC datetime: a busy second's messages share it


def _date(unix: int) -> datetime:
    """The same naive UTC second rules.from_unix gives, made once a second."""
    at = _DATES.get(unix)
    if at is None:
        if len(_DATES) >= 4096:
            _DATES.clear()
        at = _DATES[unix] = _EPOCH + timedelta(seconds=unix)
    return at


def chat_of(message, chats: Dict[int, Any]) -> Optional[ChatRef]:
    """The group a raw message was sent in, as the adapter names it; None if not a group."""
    peer = message.peer_id
    if type(peer) is P.PeerChannel:
        c = chats.get(peer.channel_id)
        if type(c) is not P.Channel or not c.megagroup or c.monoforum:
            return None
        return _CHATS.get_or_make((-(SUPER + peer.channel_id), "supergroup", c.title, _username(c)),
                                  ChatRef)
    if type(peer) is P.PeerChat:
        c = chats.get(peer.chat_id)
        if type(c) is not P.Chat:
            return None
        return _CHATS.get_or_make((-peer.chat_id, "group", c.title, None), ChatRef)
    return None


def sender_of(message, users: Dict[int, Any]) -> Optional[Person]:
    frm = message.from_id
    if type(frm) is not P.PeerUser:
        return None  # sent on behalf of a chat, or no sender given
    u = users.get(frm.user_id)
    if type(u) is not P.User:
        return None
    return _PEOPLE.get_or_make((u.id, bool(u.bot), u.first_name or "", u.last_name, _username(u),
                                u.lang_code), Person)


class FastPath:
    """Decides from the raw update; `taken` counts the messages that skipped the parse."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.taken = 0

    def event(self, update, users: Dict[int, Any], chats: Dict[int, Any]) -> Optional[MessageSeen]:
        """The MessageSeen for a cached member's message, or None: let pyrogram parse it."""
        m = update.message
        if type(m) is not P.Message or m.out or m.fwd_from is not None:
            return None
        chat = chat_of(m, chats)
        if chat is None:
            return None
        sender = sender_of(m, users)
        rt = self.runtime
        if sender is None or not is_person(sender, rt.bot_id):
            return None
        if not rt.engine.holds_active(chat.id, sender.id):
            return None
        return MessageSeen(chat, sender, _date(m.date), None, False, m.message or None)

    def wrap(self, parser):
        """The dispatcher's parser for new messages, with this path in front of it."""
        async def parse(update, users, chats):
            rt = self.runtime
            if rt.accepting and not rt.recheck_pending:
                try:
                    ev = self.event(update, users, chats)
                except Exception as exc:  # an odd update: the ordinary path decides
                    log.debug("fast path skipped an update: %s", type(exc).__name__)
                    ev = None
                if ev is not None:
                    rt.received["message"] += 1  # counted as the ordinary path counts it
                    rt.last_update = time.time()
                    try:
                        rt.pipeline.submit(ev, timeout=0)
                    except queue_mod.Full:  # backpressure waits in a thread, never on the loop
                        await asyncio.to_thread(rt.pipeline.submit, ev)
                    self.taken += 1
                    raise StopPropagation
            return await parser(update, users, chats)
        return parse


def install(client, runtime) -> Optional[FastPath]:
    """Put the fast path in front of the client's message parsing; None where the client has
    no dispatcher table to hook (then every message takes the ordinary path)."""
    parsers = getattr(getattr(client, "dispatcher", None), "update_parsers", None)
    if not isinstance(parsers, dict) or not all(t in parsers for t in MESSAGE_UPDATES):
        return None
    fast = FastPath(runtime)
    for t in MESSAGE_UPDATES:
        parsers[t] = fast.wrap(parsers[t])
    return fast
