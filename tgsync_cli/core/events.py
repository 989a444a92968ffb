"""Domain events: every adapter (Bot API JSON, pyrogram, Desktop export, simulator) speaks these.

All times are Telegram's (`at`, naive UTC datetimes with second precision), never the clock of
the machine that processes the event, so late, duplicate and reordered events converge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Tuple


@dataclass(frozen=True)
class Person:
    """A Telegram user as an update describes them."""

    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: Optional[str] = None
    username: Optional[str] = None
    language_code: Optional[str] = None


@dataclass(frozen=True)
class ChatRef:
    id: int
    type: str = "supergroup"  # private | group | supergroup | channel
    title: Optional[str] = None
    username: Optional[str] = None


@dataclass(frozen=True)
class MemberState:
    """A Telegram chat-member status: creator|administrator|member|restricted|left|kicked."""

    status: str
    is_member: bool = True  # only meaningful for `restricted`


@dataclass(frozen=True)
class BotStatusChanged:
    """my_chat_member: the bot itself was added, promoted, demoted or removed."""

    chat: ChatRef
    actor: Optional[Person]
    old: MemberState
    new: MemberState
    at: datetime
    bot: Optional[Person] = None  # the bot as Telegram describes it (username for deep links)
    # an admin bot's right to add members (and answer join requests); None: not said
    can_invite_users: Optional[bool] = None


@dataclass(frozen=True)
class MemberStatusChanged:
    """chat_member (route 3), or a service message about a member (route 5, via=service_message)."""

    chat: ChatRef
    user: Person
    new: MemberState
    at: datetime
    actor: Optional[Person] = None
    old: Optional[MemberState] = None
    via: str = "chat_member_event"  # or "service_message"
    invite_link: Optional[str] = None  # the link's name (or URL) when Telegram says one was used
    invited_by: Optional[int] = None  # the link's creator
    via_join_request: bool = False  # an approved join request brought them in


@dataclass(frozen=True)
class JoinRequested:
    """chat_join_request: someone asked to join a group that approves its members.

    `user_chat_id` is the private chat the bot may write to for the next five minutes (or until
    the request is answered), even if they never opened the bot; it is not assumed to be the
    user's id."""

    chat: ChatRef
    user: Person
    user_chat_id: int
    at: datetime
    invite_link: Optional[str] = None
    bio: Optional[str] = None


@dataclass(frozen=True)
class MessageSeen:
    """A message in a chat (route 4). `sender` is None for messages with no person behind them."""

    chat: ChatRef
    sender: Optional[Person]
    at: datetime
    sender_chat_id: Optional[int] = None
    is_automatic_forward: bool = False
    text: Optional[str] = None


@dataclass(frozen=True)
class DeepLinkStart:
    """A private `/start <payload>` (route 2). `payload` is None for a bare /start."""

    user: Person
    payload: Optional[str]
    at: datetime


@dataclass(frozen=True)
class ChatMigrated:
    """A basic group became a supergroup: the club follows it to the new id."""

    old_chat_id: int
    new_chat_id: int
    at: datetime
    title: Optional[str] = None


@dataclass(frozen=True)
class RosterEntry:
    person: Person
    state: MemberState


@dataclass(frozen=True)
class BotStatusRecheck:
    """Ask Telegram again for the bot's own status in every club, as at start: serve
    queues it after the connection to Telegram was lost, since updates may have been missed."""

    at: datetime


@dataclass(frozen=True)
class RequestsDue:
    """Time to apply the app's pending requests: serve queues it every few seconds, so they are
    applied by the engine's own worker, in order with the updates."""

    at: datetime


@dataclass(frozen=True)
class RosterObserved:
    """A listing of members (route 1 admins, route 6 import, reconcile) taken at `at`.

    `complete` means the listing is the whole roster, so active members not in it have left.
    """

    chat: ChatRef
    entries: Tuple[RosterEntry, ...]
    at: datetime
    source: str = "member_import"
    complete: bool = False


Event = (BotStatusChanged | MemberStatusChanged | MessageSeen | DeepLinkStart | ChatMigrated
         | RosterObserved | JoinRequested)
