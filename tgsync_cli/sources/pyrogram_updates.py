"""Pyrogram high-level objects → domain events (pure: no I/O, no client calls).

Pyrogram differs from the Bot API in ways that matter here, checked in its source:
- `utils.timestamp_to_datetime` uses `datetime.fromtimestamp(ts)`: a NAIVE LOCAL time, so every
  `date` is turned back into unix seconds before becoming naive UTC (`_at`).
- MTProto has no my_chat_member/chat_member split: both arrive as `ChatMemberUpdated`; we split
  them by the bot's id. A missing `new_chat_member` means the user is no longer a participant.
- Anonymous admins and channel posts have `from_user=None` and `sender_chat` set (pyrogram never
  invents the Bot API's 1087968824 / 777000 users unless Telegram sent a real user peer).
- The automatic-forward flag is called `automatic_forward` in pyrogram.
"""

from __future__ import annotations

from datetime import datetime
from typing import List

from pyrogram import enums

from tgsync_cli.core.events import (
    BotStatusChanged,
    ChatMigrated,
    ChatRef,
    Event,
    JoinRequested,
    MemberState,
    MemberStatusChanged,
    MessageSeen,
    Person,
)
from tgsync_cli.core.rules import from_unix, outside_groups, removal_status

_STATUS = {
    enums.ChatMemberStatus.OWNER: "creator",
    enums.ChatMemberStatus.ADMINISTRATOR: "administrator",
    enums.ChatMemberStatus.MEMBER: "member",
    enums.ChatMemberStatus.RESTRICTED: "restricted",
    enums.ChatMemberStatus.LEFT: "left",
    enums.ChatMemberStatus.BANNED: "kicked",
}
_CHAT_TYPE = {
    enums.ChatType.PRIVATE: "private", enums.ChatType.BOT: "private",
    enums.ChatType.GROUP: "group",
    enums.ChatType.SUPERGROUP: "supergroup", enums.ChatType.FORUM: "supergroup",
    enums.ChatType.CHANNEL: "channel", enums.ChatType.DIRECT: "channel",
}
LEFT = MemberState("left")


def _at(dt: datetime) -> datetime:
    """Pyrogram's naive-local (or aware) datetime → naive UTC, second precision."""
    return from_unix(dt.timestamp())


def person_from_user(user) -> Person:
    return Person(id=user.id, is_bot=bool(user.is_bot), first_name=user.first_name or "",
                  last_name=user.last_name, username=user.username,
                  language_code=getattr(user, "language_code", None))


def chat_ref(chat) -> ChatRef:
    return ChatRef(id=chat.id, type=_CHAT_TYPE.get(chat.type, "supergroup"),
                   title=chat.title, username=chat.username)


def state_from_member(member) -> MemberState:
    """A pyrogram ChatMember (or None: not a participant) → MemberState."""
    if member is None:
        return LEFT
    status = _STATUS[member.status]
    if status == "restricted":
        return MemberState("restricted", is_member=bool(member.is_member))
    return MemberState(status)


def events_from_chat_member_updated(update, bot_id: int) -> List[Event]:
    """One ChatMemberUpdated → BotStatusChanged (about us) or MemberStatusChanged (about others)."""
    member = update.new_chat_member or update.old_chat_member
    user = member.user if member else None
    if user is None:  # a banned channel/chat peer, not a person
        return []
    chat, at = chat_ref(update.chat), _at(update.date)
    actor = person_from_user(update.from_user) if update.from_user else None
    old, new = state_from_member(update.old_chat_member), state_from_member(update.new_chat_member)
    if (chat.type == "group" and update.new_chat_member is None and actor is not None
            and actor.id != user.id):
        # a basic group has no ban list: MTProto just drops the participant, where the Bot API
        # says `kicked` for a removal by someone else (the service message agrees)
        new = MemberState("kicked")
    if user.id == bot_id or user.is_self:
        can_invite = None
        if new.status == "creator":
            can_invite = True
        elif new.status == "administrator":
            rights = getattr(update.new_chat_member, "privileges", None)
            can_invite = bool(rights is not None and rights.can_invite_users)
        return [BotStatusChanged(chat=chat, actor=actor, old=old, new=new, at=at,
                                 bot=person_from_user(user), can_invite_users=can_invite)]
    link = getattr(update, "invite_link", None)
    name = invited_by = None
    if link is not None:
        name = link.name or link.invite_link
        invited_by = link.creator.id if link.creator else None
    return [MemberStatusChanged(chat=chat, user=person_from_user(user), new=new, at=at,
                                actor=actor, old=old, via="chat_member_event",
                                invite_link=name, invited_by=invited_by,
                                via_join_request=bool(getattr(update, "via_join_request", False)
                                                      or (link is not None and link.creates_join_request)))]


MAX_BIO = 140  # as the Bot API adapter: a bio is cut to Telegram's own limit, never trusted


def events_from_join_request(request) -> List[Event]:
    """A pyrogram ChatJoinRequest (MTProto `UpdateBotChatInviteRequester`) → JoinRequested.

    MTProto has no `user_chat_id`: a bot writes to a user through the user's own peer, so the
    private chat is the requester's id (what the Bot API's user_chat_id names as well)."""
    user = request.from_user
    if user is None or request.chat is None:
        return []
    link = getattr(request, "invite_link", None)
    name = (link.name or link.invite_link) if link is not None else None
    bio = request.bio or None  # MTProto's `about` is always there; empty means none
    return [JoinRequested(chat=chat_ref(request.chat), user=person_from_user(user),
                          user_chat_id=user.id, at=_at(request.date), invite_link=name,
                          bio=str(bio)[:MAX_BIO] if bio is not None else None)]


def events_from_bot_stopped(update, users) -> List[Event]:
    """Raw `UpdateBotStopped`: a user blocked (`stopped`) or unblocked the bot in their private
    chat — the Bot API's private my_chat_member. Pyrogram has no high-level object for it."""
    u = users.get(update.user_id) if users else None
    user = Person(id=update.user_id, first_name=getattr(u, "first_name", None) or "",
                  last_name=getattr(u, "last_name", None), username=getattr(u, "username", None))
    blocked = bool(update.stopped)
    return [BotStatusChanged(chat=ChatRef(id=update.user_id, type="private"), actor=user,
                             old=MemberState("member" if blocked else "kicked"),
                             new=MemberState("kicked" if blocked else "member"),
                             at=from_unix(update.date))]


def events_from_message(message, bot_id: int) -> List[Event]:
    """A message (ordinary or service) → the events it proves; [] when it proves nothing."""
    if getattr(message, "empty", False) or message.chat is None:
        return []
    chat, at = chat_ref(message.chat), _at(message.date)
    actor = person_from_user(message.from_user) if message.from_user else None
    if message.migrate_to_chat_id:
        return [ChatMigrated(message.chat.id, message.migrate_to_chat_id, at, message.chat.title)]
    if message.migrate_from_chat_id:
        return [ChatMigrated(message.migrate_from_chat_id, message.chat.id, at, message.chat.title)]
    sender_chat_id = message.sender_chat.id if message.sender_chat else None
    if sender_chat_id is not None:
        actor = None  # sent on behalf of a chat: no person behind it (as the Bot API adapter)
    if message.new_chat_members:
        return [MemberStatusChanged(chat=chat, user=person_from_user(u), new=MemberState("member"),
                                    at=at, actor=actor, via="service_message")
                for u in message.new_chat_members if not u.is_bot and u.id != bot_id]
    if message.left_chat_member:
        u = message.left_chat_member
        if u.is_bot or u.id == bot_id:
            return []
        status = removal_status(u.id, actor.id if actor else None)
        return [MemberStatusChanged(chat=chat, user=person_from_user(u), new=MemberState(status),
                                    at=at, actor=actor, via="service_message")]
    if message.service:  # pins, titles, calls...: nothing the roster needs
        return []
    text = message.text or message.caption
    text = str(text) if text is not None else None
    direct = outside_groups(chat.type, actor, text, at)
    if direct is not None:
        return list(direct)
    return [MessageSeen(chat=chat, sender=actor, at=at,
                        sender_chat_id=sender_chat_id,
                        is_automatic_forward=bool(getattr(message, "automatic_forward", False)),
                        text=text)]
