"""Bot API `Update` JSON → the raw MTProto update Telegram sends a pyrogram bot for the same thing,
parsed by pyrogram's own parsers into the objects its handlers receive (no network).

Used by the differential test: both renderings of every simulator update must yield the same
events. Ids follow Telegram's rules (TELEGRAM-NOTES.md): a supergroup or channel `-100<id>` is
channel `<id>`, a basic group `-<id>` is chat `<id>`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

from pyrogram import raw, types

from tests.pyrogram_offline import wire
from tgsync_cli.sources.pyrogram_updates import (events_from_bot_stopped,
                                                 events_from_chat_member_updated,
                                                 events_from_join_request,
                                                 events_from_message)

P = raw.types
SUPER = 10**12
RIGHTS = P.ChatAdminRights(change_info=True, delete_messages=True, ban_users=True,
                           invite_users=True, pin_messages=True)


NO_INVITE = P.ChatAdminRights(change_info=True, delete_messages=True, ban_users=True,
                              pin_messages=True)


class NotRepresentable(Exception):
    """Telegram has no MTProto form of this Bot API update (a ban in a basic group)."""


def raw_id(chat: Dict[str, Any]) -> int:
    cid = chat["id"]
    return -cid - SUPER if chat.get("type") in ("supergroup", "channel") else -cid


def peer(chat: Dict[str, Any]):
    if chat["type"] == "private":
        return P.PeerUser(user_id=chat["id"])
    if chat["type"] == "group":
        return P.PeerChat(chat_id=raw_id(chat))
    return P.PeerChannel(channel_id=raw_id(chat))


class Renderer:
    def __init__(self, client, bot_id: int):
        self.client, self.bot_id = client, bot_id
        self.users: Dict[int, Any] = {}
        self.chats: Dict[int, Any] = {}

    # -- the peers an update names ------------------------------------------------------------
    def _user(self, u: Dict[str, Any]) -> int:
        self.users[u["id"]] = wire(P.User(
            id=u["id"], access_hash=u["id"] * 7 + 1, first_name=u.get("first_name"),
            last_name=u.get("last_name"), username=u.get("username"), bot=u.get("is_bot") or None,
            is_self=(u["id"] == self.bot_id) or None, lang_code=u.get("language_code")))
        return u["id"]

    def _chat(self, c: Dict[str, Any]) -> None:
        rid = raw_id(c)
        if c["type"] == "group":
            self.chats[rid] = wire(P.Chat(id=rid, title=c.get("title") or "", photo=P.ChatPhotoEmpty(),
                                          participants_count=0, date=0, version=1))
        elif c["type"] in ("supergroup", "channel"):
            self.chats[rid] = wire(P.Channel(
                id=rid, title=c.get("title") or "", photo=P.ChatPhotoEmpty(), date=0,
                access_hash=rid * 3 + 1, username=c.get("username"),
                megagroup=(c["type"] == "supergroup") or None,
                broadcast=(c["type"] == "channel") or None))

    # -- chat members ---------------------------------------------------------------------------
    def _participant(self, chat, member, actor: int, date: int):
        uid, status = self._user(member["user"]), member["status"]
        rights = RIGHTS if member.get("can_invite_users", True) else NO_INVITE
        if chat["type"] == "group":
            if status == "creator":
                return P.ChatParticipantCreator(user_id=uid)
            if status == "administrator":
                return P.ChatParticipantAdmin(user_id=uid, inviter_id=actor, date=date)
            if status == "member":
                return P.ChatParticipant(user_id=uid, inviter_id=actor, date=date)
            if status == "restricted":
                raise NotRepresentable("a basic group has no restricted members")
            return None  # left or removed: no participant
        if status == "creator":
            return P.ChannelParticipantCreator(user_id=uid, admin_rights=RIGHTS)
        if status == "administrator":
            return P.ChannelParticipantAdmin(user_id=uid, promoted_by=actor, date=date,
                                             admin_rights=rights)
        if status == "member":
            return P.ChannelParticipant(user_id=uid, date=date)
        if status in ("restricted", "kicked"):
            banned = status == "kicked"
            left = banned or not member.get("is_member", True)
            return P.ChannelParticipantBanned(
                peer=P.PeerUser(user_id=uid), kicked_by=actor, date=date, left=left or None,
                banned_rights=P.ChatBannedRights(until_date=0, view_messages=banned or None,
                                                 send_messages=True))
        return None

    def chat_member(self, upd: Dict[str, Any]):
        chat, date = upd["chat"], upd["date"]
        actor = self._user(upd["from"])
        if chat["type"] == "private":  # the user blocked or unblocked the bot
            stopped = upd["new_chat_member"]["status"] == "kicked"
            return events_from_bot_stopped(wire(P.UpdateBotStopped(
                user_id=actor, date=date, stopped=stopped, qts=1)), self.users)
        self._chat(chat)
        if chat["type"] == "group" and upd["old_chat_member"]["status"] == "kicked":
            raise NotRepresentable("a basic group has no ban list to be lifted")
        prev = self._participant(chat, upd["old_chat_member"], actor, date)
        new = self._participant(chat, upd["new_chat_member"], actor, date)
        if prev is None and new is None:
            raise NotRepresentable("neither side is a participant")
        uid = upd["new_chat_member"]["user"]["id"]
        invite = self._invite(upd, date)
        if invite is None and upd.get("via_join_request"):
            invite = P.ChatInvitePublicJoinRequests()  # approved with no link: how MTProto says it
        if chat["type"] == "group":
            update = P.UpdateChatParticipant(chat_id=raw_id(chat), date=date, actor_id=actor,
                                             user_id=uid, qts=1, prev_participant=prev,
                                             new_participant=new, invite=invite)
        else:
            update = P.UpdateChannelParticipant(channel_id=raw_id(chat), date=date, actor_id=actor,
                                                user_id=uid, qts=1, prev_participant=prev,
                                                new_participant=new, invite=invite)
        parsed = _run(types.ChatMemberUpdated._parse(self.client, wire(update), self.users, self.chats))
        return events_from_chat_member_updated(parsed, self.bot_id)

    def _invite(self, upd: Dict[str, Any], date: int):
        link = upd.get("invite_link")
        if not link:
            return None
        return P.ChatInviteExported(link=link["invite_link"], admin_id=self._user(link["creator"]),
                                    date=date, title=link.get("name"),
                                    request_needed=link.get("creates_join_request") or None)

    def join_request(self, upd: Dict[str, Any]):
        """UpdateBotChatInviteRequester: MTProto has no user_chat_id (the user's peer is it)."""
        chat = upd["chat"]
        self._chat(chat)
        uid = self._user(upd["from"])
        update = P.UpdateBotChatInviteRequester(
            peer=peer(chat), date=upd["date"], user_id=uid, about=upd.get("bio") or "",
            invite=self._invite(upd, upd["date"]) or P.ChatInvitePublicJoinRequests(), qts=1)
        parsed = _run(types.ChatJoinRequest._parse(self.client, wire(update), self.users, self.chats))
        return events_from_join_request(parsed)

    # -- messages -----------------------------------------------------------------------------------
    def message(self, msg: Dict[str, Any], post: bool = False):
        chat = msg["chat"]
        self._chat(chat)
        if chat["type"] == "private":
            self._user(msg["from"])
            from_id = None  # a private message names its sender as the peer
        elif msg.get("sender_chat"):
            self._chat(msg["sender_chat"])
            from_id = peer(msg["sender_chat"])
        elif msg.get("from"):
            from_id = P.PeerUser(user_id=self._user(msg["from"]))
        else:
            from_id = None
        action = self._action(msg)
        if action is not None:
            m = P.MessageService(id=msg["message_id"], peer_id=peer(chat), from_id=from_id,
                                 date=msg["date"], action=action)
        else:
            reply = (P.MessageReplyHeader(reply_to_msg_id=msg["reply_to_message"]["message_id"])
                     if msg.get("reply_to_message") else None)
            m = P.Message(id=msg["message_id"], peer_id=peer(chat), from_id=from_id, date=msg["date"],
                          message=msg.get("text") or "", reply_to=reply, post=post or None)
        self.last_message = wire(m)  # the raw form, for the fast path's differential test
        parsed = _run(types.Message._parse(self.client, self.last_message, self.users, self.chats,
                                           replies=0))
        return events_from_message(parsed, self.bot_id)

    def _action(self, msg):
        if msg.get("new_chat_members"):
            return P.MessageActionChatAddUser(users=[self._user(u) for u in msg["new_chat_members"]])
        if msg.get("left_chat_member"):
            return P.MessageActionChatDeleteUser(user_id=self._user(msg["left_chat_member"]))
        if msg.get("migrate_to_chat_id"):
            return P.MessageActionChatMigrateTo(channel_id=-msg["migrate_to_chat_id"] - SUPER)
        if msg.get("migrate_from_chat_id"):
            return P.MessageActionChannelMigrateFrom(title=msg["chat"].get("title") or "",
                                                     chat_id=-msg["migrate_from_chat_id"])
        return None

    def update(self, upd: Dict[str, Any]) -> List[Any]:
        for key in ("my_chat_member", "chat_member"):
            if key in upd:
                return self.chat_member(upd[key])
        if "message" in upd:
            return self.message(upd["message"])
        if "channel_post" in upd:
            return self.message(upd["channel_post"], post=True)
        if "chat_join_request" in upd:
            return self.join_request(upd["chat_join_request"])
        raise AssertionError(f"no MTProto form written for {sorted(upd)}")


def _run(coro):
    return asyncio.run(coro)


def normalise_ids(scenario: Dict[str, Any]) -> Dict[str, Any]:
    """Scenario chat ids as Telegram makes them, so both renderings name the same chat: a
    supergroup or channel written as -1500 becomes -1000000001500 (payloads too)."""
    import copy
    import json
    import re

    s = copy.deepcopy(scenario)
    mapping: Dict[int, int] = {}
    for c in s.get("chats", []):
        if c["type"] in ("supergroup", "channel") and c["id"] > -SUPER:
            mapping[c["id"]] = -(SUPER + abs(c["id"]))
    for step in s.get("timeline", []):
        if step.get("do") == "migrate" and step["to"] > -SUPER:
            mapping[step["to"]] = -(SUPER + abs(step["to"]))
    text = json.dumps(s)
    for old, new in sorted(mapping.items()):
        text = re.sub(rf"join_{old}(?![0-9])", f"join_{new}", text)
    s = json.loads(text)
    for c in s.get("chats", []):
        c["id"] = mapping.get(c["id"], c["id"])
    for step in s.get("timeline", []):
        for key in ("chat", "to"):
            if key in step:
                step[key] = mapping.get(step[key], step[key])
    return s
