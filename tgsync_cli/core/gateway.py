"""The Telegram gateway protocol the engine depends on, and the offline stand-in.

Implementations: `sim.world.SimGateway` (a world), `telegram.gateway.PyrogramGateway` (live),
`OfflineGateway` (replay with no connection: every call raises TelegramUnavailable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, NoReturn, Optional, Protocol, Sequence

from tgsync_cli.core.errors import TelegramUnavailable
from tgsync_cli.core.events import MemberState, Person


@dataclass(frozen=True)
class ChatMemberInfo:
    person: Person
    state: MemberState
    # an admin's right to add members (and so to approve join requests); None: not said
    can_invite_users: Optional[bool] = None


@dataclass(frozen=True)
class BotIdentity:
    id: int
    username: str
    privacy_mode: Optional[bool] = None  # None: unknown (MTProto does not expose it to bots)


@dataclass(frozen=True)
class ChatInfo:
    """What Telegram says about a chat itself (getChat / the full chat).

    `migrated_to`: a basic group's chat object names the supergroup it became;
    `migrated_from`: a supergroup's full info names the basic group it came from."""

    id: int
    type: str
    title: Optional[str] = None
    username: Optional[str] = None
    migrated_to: Optional[int] = None
    migrated_from: Optional[int] = None


class TelegramGateway(Protocol):
    """Every call naming a basic group that has migrated raises `ChatMigrated(old, new)`."""

    def me(self) -> BotIdentity: ...

    def chat_info(self, chat_id: int) -> ChatInfo: ...

    def get_admins(self, chat_id: int) -> List[ChatMemberInfo]: ...

    def get_member(self, chat_id: int, user_id: int) -> ChatMemberInfo:
        """Current status; a user who is not in the chat comes back with status `left`."""

    def iter_member_pages(self, chat_id: int) -> Iterator[Sequence[ChatMemberInfo]]:
        """Every member Telegram lists, page by page. Raises AdminRequired for a non-admin bot."""

    def member_count(self, chat_id: int) -> int: ...

    def send_group_message(self, chat_id: int, text: str, button_text: Optional[str] = None,
                           button_url: Optional[str] = None) -> None: ...

    def send_private(self, user_id: int, text: str, button_text: Optional[str] = None,
                     button_url: Optional[str] = None) -> bool:
        """False (not an exception) when the user never opened the bot (and has no join
        request the bot may still answer)."""

    def approve_join_request(self, chat_id: int, user_id: int) -> None:
        """Raises JoinRequestMissing, AlreadyParticipant, or AdminRequired (no can_invite_users)."""

    def decline_join_request(self, chat_id: int, user_id: int) -> None: ...

    def ban_member(self, chat_id: int, user_id: int) -> None:
        """Raises CannotRemove for the creator or an admin, AdminRequired for a non-admin bot."""

    def unban_member(self, chat_id: int, user_id: int) -> None:
        """Lifts a ban only if there is one (a member is not removed by it)."""


class OfflineGateway:
    """Used by `replay` when Telegram is not connected: steps that need it are skipped and reported."""

    def __init__(self, bot_id: Optional[int] = None, username: Optional[str] = None):
        self._id = bot_id
        self._username = username

    def _no(self, what: str) -> NoReturn:
        raise TelegramUnavailable(f"{what} needs a Telegram connection (offline)")

    def me(self) -> BotIdentity:
        if self._id is None:
            self._no("identifying the bot")
        return BotIdentity(self._id, self._username or "", None)

    def chat_info(self, chat_id):
        self._no("looking up a chat")

    def get_admins(self, chat_id):
        self._no("listing admins")

    def get_member(self, chat_id, user_id):
        self._no("checking a member with Telegram")

    def iter_member_pages(self, chat_id):
        self._no("listing members")

    def member_count(self, chat_id):
        self._no("counting members")

    def send_group_message(self, chat_id, text, button_text=None, button_url=None):
        self._no("posting to the group")

    def send_private(self, user_id, text, button_text=None, button_url=None):
        self._no("sending a private message")

    def approve_join_request(self, chat_id, user_id):
        self._no("approving a join request")

    def decline_join_request(self, chat_id, user_id):
        self._no("declining a join request")

    def ban_member(self, chat_id, user_id):
        self._no("removing a member")

    def unban_member(self, chat_id, user_id):
        self._no("lifting a ban")
