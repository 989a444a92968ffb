"""The simulated Telegram's state, and the gateway that answers the engine from it.

`World` holds users, chats, statuses, privacy mode and the bot's rights at the current time;
`SimGateway` answers the engine's TelegramGateway calls from it — refusing them the way
Telegram does (not in the chat, not an admin, a basic group that has migrated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set

from tgsync_cli.core.errors import (
    AdminRequired,
    BotNotInChat,
    ChatMigratedError,
    TelegramError,
)
from tgsync_cli.core.events import MemberState, Person
from tgsync_cli.core.gateway import BotIdentity, ChatInfo, ChatMemberInfo
from tgsync_cli.core.rules import ANONYMOUS_ADMIN_ID

PAGE = 200
ADMINS = ("creator", "administrator")


@dataclass
class SimChat:
    id: int
    type: str
    title: str
    members: Dict[int, MemberState] = field(default_factory=dict)
    bot: MemberState = field(default_factory=lambda: MemberState("left"))
    migrated_to: Optional[int] = None
    migrated_from: Optional[int] = None
    username: Optional[str] = None

    def state(self, uid: int) -> MemberState:
        return self.members.get(uid, MemberState("left"))


class World:
    """Users, chats, statuses, privacy mode and the bot's rights at the current time."""

    def __init__(self, scenario: Dict[str, Any]):
        b = scenario["bot"]
        self.bot = Person(id=b["id"], is_bot=True, first_name=b.get("first_name", "Ayda Run"),
                          username=b["username"])
        self.privacy_mode = bool(b.get("privacy_mode", True))
        self.users: Dict[int, Person] = {
            u["id"]: Person(id=u["id"], is_bot=bool(u.get("is_bot", False)), first_name=u["first_name"],
                            last_name=u.get("last_name"), username=u.get("username"),
                            language_code=u.get("language_code"))
            for u in scenario.get("users", []) if u["id"] != b["id"]}
        self.users[ANONYMOUS_ADMIN_ID] = Person(ANONYMOUS_ADMIN_ID, True, "Group", None, "GroupAnonymousBot")
        self.chats: Dict[int, SimChat] = {}
        for c in scenario.get("chats", []):
            chat = SimChat(c["id"], c["type"], c["title"], username=c.get("username"))
            for m in c.get("members", []):
                state = MemberState(m["status"], m.get("is_member", True))
                if m["user"] == self.bot.id:
                    chat.bot = state  # the bot was in the group before the timeline starts
                else:
                    chat.members[m["user"]] = state
            self.chats[chat.id] = chat
        self.started: Set[int] = set()
        self.blocked: Set[int] = set()  # users who blocked the bot
        self.now: Optional[datetime] = None

    def chat(self, chat_id: int) -> SimChat:
        return self.chats[chat_id]

    def bot_in(self, chat_id: int) -> bool:
        chat = self.chats.get(chat_id)
        return chat is not None and chat.migrated_to is None and _present(chat.bot)

    def bot_admin(self, chat_id: int) -> bool:
        return self.bot_in(chat_id) and self.chats[chat_id].bot.status in ADMINS


def _present(state: MemberState) -> bool:
    return state.status in ("creator", "administrator", "member") or (
        state.status == "restricted" and state.is_member)


@dataclass(frozen=True)
class Sent:
    chat: int
    text: str
    buttons: tuple = ()


class SimGateway:
    """The engine's TelegramGateway, answered from the world as Telegram would answer."""

    def __init__(self, world: World):
        self.world = world
        self.sent: List[Sent] = []
        self.calls: List[str] = []

    def _in(self, chat_id: int) -> SimChat:
        chat = self.world.chats.get(chat_id)
        if chat is not None and chat.migrated_to is not None:
            # Bot API: "Bad Request: group chat was upgraded to a supergroup chat",
            # parameters.migrate_to_chat_id
            raise ChatMigratedError(chat_id, chat.migrated_to)
        if not self.world.bot_in(chat_id):
            raise BotNotInChat(f"bot is not a member of chat {chat_id} (CHANNEL_PRIVATE)")
        return self.world.chats[chat_id]

    def me(self) -> BotIdentity:
        return BotIdentity(self.world.bot.id, self.world.bot.username or "", self.world.privacy_mode)

    def chat_info(self, chat_id: int) -> ChatInfo:
        """getChat: a basic group's object names the supergroup it became (`migrated_to`, answered
        even after the migration), a supergroup's full info the group it came from."""
        self.calls.append("chat_info")
        chat = self.world.chats.get(chat_id)
        if chat is not None and chat.migrated_to is not None:
            return ChatInfo(chat.id, chat.type, chat.title, chat.username, migrated_to=chat.migrated_to)
        chat = self._in(chat_id)
        return ChatInfo(chat.id, chat.type, chat.title, chat.username,
                        migrated_from=chat.migrated_from)

    def _info(self, uid: int, state: MemberState) -> ChatMemberInfo:
        return ChatMemberInfo(self.world.users.get(uid, Person(uid)), state)

    def get_admins(self, chat_id: int) -> List[ChatMemberInfo]:
        self.calls.append("get_admins")
        chat = self._in(chat_id)
        admins = [self._info(uid, s) for uid, s in chat.members.items() if s.status in ADMINS]
        return [a for a in admins if not a.person.is_bot]  # getChatAdministrators omits other bots

    def get_member(self, chat_id: int, user_id: int) -> ChatMemberInfo:
        self.calls.append("get_member")
        chat = self._in(chat_id)
        if user_id == self.world.bot.id:  # Telegram answers the bot about itself too
            return ChatMemberInfo(self.world.bot, chat.bot)
        return self._info(user_id, chat.state(user_id))

    def iter_member_pages(self, chat_id: int) -> Iterator[Sequence[ChatMemberInfo]]:
        self.calls.append("iter_member_pages")
        chat = self._in(chat_id)
        if chat.bot.status not in ADMINS:
            raise AdminRequired(f"listing members of chat {chat_id} needs admin rights (CHAT_ADMIN_REQUIRED)")
        listed = [self._info(uid, s) for uid, s in chat.members.items() if _present(s)]
        listed.append(ChatMemberInfo(self.world.bot, chat.bot))
        return iter([listed[i:i + PAGE] for i in range(0, len(listed), PAGE)] or [[]])

    def member_count(self, chat_id: int) -> int:
        self.calls.append("member_count")
        chat = self._in(chat_id)
        return sum(1 for s in chat.members.values() if _present(s)) + 1  # the bot counts too

    def send_group_message(self, chat_id: int, text: str, button_text=None, button_url=None) -> None:
        chat = self._in(chat_id)
        if chat.bot.status == "restricted":
            raise TelegramError(f"bot may not write in chat {chat_id} (CHAT_WRITE_FORBIDDEN)")
        self.sent.append(Sent(chat_id, text, (button_url,) if button_url else ()))

    def send_private(self, user_id: int, text: str) -> bool:
        self.calls.append("send_private")
        if user_id not in self.world.started or user_id in self.world.blocked:
            return False  # Telegram refuses: never opened the bot, or blocked it
        self.sent.append(Sent(user_id, text))
        return True
