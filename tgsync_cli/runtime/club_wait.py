"""Events for a chat that has no club yet wait for one, a while, instead of being dropped.

Several processes share a store (serve processes splitting a stream, Celery workers): one of them
may handle the message that follows "bot added" a moment before another has written the club
that "bot added" creates. Dropping it would lose a member for good. So an event that named a
chat with no club is kept and tried again, every quarter second, until the store has the club
(written by any process) or `CLUB_WAIT_SECONDS` passed; only then is it dropped, as an event for
a group that is not a club always was. The club directory asks the store each time (it keeps no
negative answer that another process's write could make wrong), so the wait ends as soon as the
club exists.
"""

from __future__ import annotations

from typing import Any, Optional

from tgsync_cli.core.rules import parse_join_payload
from tgsync_cli.core.events import DeepLinkStart, MemberStatusChanged, MessageSeen, RosterObserved

CLUB_WAIT_SECONDS = 30.0
RECHECK_SECONDS = 0.25


def club_chat_of(event: Any) -> Optional[int]:
    """The group chat an event needs a club for (None: it needs none, or will never apply)."""
    if isinstance(event, MessageSeen):
        s = event.sender
        if (s is None or s.is_bot or event.sender_chat_id is not None or event.is_automatic_forward
                or event.chat.type in ("private", "channel")):
            return None
        return event.chat.id
    if isinstance(event, (MemberStatusChanged, RosterObserved)):
        return None if event.chat.type in ("private", "channel") else event.chat.id
    if isinstance(event, DeepLinkStart):
        return parse_join_payload(event.payload) if event.payload else None
    return None


def waits_for_club(engine: Any, event: Any) -> bool:
    """After `engine.handle(event)`: whether it found no club (so it should wait for one)."""
    chat = club_chat_of(event)
    directory = getattr(engine, "directory", None)  # an engine without one keeps no clubs
    return chat is not None and directory is not None and directory.known(chat) is None


def club_now(engine: Any, event: Any) -> bool:
    """Whether the club the event waits for exists now (asks the store)."""
    chat = club_chat_of(event)
    return chat is not None and engine.directory.club(chat, discover=False) is not None
