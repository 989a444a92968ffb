"""The simulated Telegram's state, and the gateway that answers the engine from it.

`World` holds users, chats, statuses, privacy mode and the bot's rights at the current time;
`SimGateway` answers the engine's TelegramGateway calls from it — refusing them the way
Telegram does (not in the chat, not an admin, a basic group that has migrated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set

from tgsync_cli.core.errors import (
    AdminRequired,
    AlreadyParticipant,
    BotNotInChat,
    CannotRemove,
    ChatMigratedError,
    JoinRequestMissing,
    TelegramError,
)
from tgsync_cli.core.events import MemberState, Person
from tgsync_cli.core.gateway import BotIdentity, ChatInfo, ChatMemberInfo
from tgsync_cli.core.rules import ANONYMOUS_ADMIN_ID

PAGE = 200
ADMINS = ("creator", "administrator")
# how long a bot may write to a join requester who never opened it (Bot API 5.5)
REQUEST_DM_WINDOW = timedelta(minutes=5)


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
    bot_can_invite: bool = True  # the admin right approving join requests needs
    requests: Dict[int, datetime] = field(default_factory=dict)  # pending join requests: user → when
    request_links: Dict[int, str] = field(default_factory=dict)  # the link a request came through

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

    def bot_may_invite(self, chat_id: int) -> bool:
        """An admin bot with can_invite_users: it sees and answers join requests."""
        return self.bot_admin(chat_id) and self.chats[chat_id].bot_can_invite

    def may_write_requester(self, uid: int) -> bool:
        """A join requester may be written to for five minutes, or until the request is answered,
        by a bot that can answer it, even if they never opened the bot."""
        return self.now is not None and any(
            uid in c.requests and self.now - c.requests[uid] <= REQUEST_DM_WINDOW
            and self.bot_may_invite(c.id) for c in self.chats.values())


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
        # told of every change the bot's own calls make (chat, user, old, new), so the simulator
        # delivers the updates Telegram sends for them once the current step is handled
        self.on_change: Optional[Callable[[SimChat, int, MemberState, MemberState, str], None]] = None

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
            can_invite = chat.bot_can_invite if chat.bot.status in ADMINS else False
            return ChatMemberInfo(self.world.bot, chat.bot, can_invite)
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

    def send_private(self, user_id: int, text: str, button_text: Optional[str] = None,
                     button_url: Optional[str] = None) -> bool:
        self.calls.append("send_private")
        if user_id in self.world.blocked:
            return False  # Telegram refuses: they blocked the bot
        if user_id not in self.world.started and not self.world.may_write_requester(user_id):
            return False  # never opened the bot, and no join request it may answer in private
        self.sent.append(Sent(user_id, text, (button_url,) if button_url else ()))
        return True

    # -- join requests and removals: refused as Telegram refuses ---------------------------------
    def _inviter(self, chat_id: int, what: str) -> SimChat:
        chat = self._in(chat_id)
        if chat.bot.status not in ADMINS or not chat.bot_can_invite:
            raise AdminRequired(f"{what} in chat {chat_id} needs an admin bot with can_invite_users "
                                "(CHAT_ADMIN_REQUIRED)")
        return chat

    def _change(self, chat: SimChat, uid: int, new: MemberState, kind: str) -> None:
        old = chat.state(uid)
        chat.members[uid] = new
        if self.on_change is not None:
            self.on_change(chat, uid, old, new, kind)

    def approve_join_request(self, chat_id: int, user_id: int) -> None:
        self.calls.append("approve_join_request")
        chat = self._inviter(chat_id, "approving a join request")
        if _present(chat.state(user_id)):
            chat.requests.pop(user_id, None)
            raise AlreadyParticipant(f"user {user_id} is already in chat {chat_id} (USER_ALREADY_PARTICIPANT)")
        if chat.requests.pop(user_id, None) is None:
            raise JoinRequestMissing(f"no join request from {user_id} in chat {chat_id} (HIDE_REQUESTER_MISSING)")
        self._change(chat, user_id, MemberState("member"), "approved")

    def decline_join_request(self, chat_id: int, user_id: int) -> None:
        self.calls.append("decline_join_request")
        chat = self._inviter(chat_id, "declining a join request")
        chat.request_links.pop(user_id, None)
        if chat.requests.pop(user_id, None) is None:
            raise JoinRequestMissing(f"no join request from {user_id} in chat {chat_id} (HIDE_REQUESTER_MISSING)")

    def ban_member(self, chat_id: int, user_id: int) -> None:
        self.calls.append("ban_member")
        chat = self._in(chat_id)
        if chat.bot.status not in ADMINS:
            raise AdminRequired(f"removing a member of chat {chat_id} needs admin rights (CHAT_ADMIN_REQUIRED)")
        if user_id == self.world.bot.id or chat.state(user_id).status in ADMINS:
            raise CannotRemove(f"Telegram will not ban user {user_id} in chat {chat_id} (USER_ADMIN_INVALID)")
        chat.requests.pop(user_id, None)
        chat.request_links.pop(user_id, None)
        if chat.state(user_id).status != "kicked":  # banning the banned succeeds and changes nothing
            self._change(chat, user_id, MemberState("kicked"), "banned")

    def unban_member(self, chat_id: int, user_id: int) -> None:
        self.calls.append("unban_member")
        chat = self._in(chat_id)
        if chat.bot.status not in ADMINS:
            raise AdminRequired(f"lifting a ban in chat {chat_id} needs admin rights (CHAT_ADMIN_REQUIRED)")
        if chat.state(user_id).status == "kicked":  # only_if_banned: a member is left alone
            self._change(chat, user_id, MemberState("left"), "unbanned")
