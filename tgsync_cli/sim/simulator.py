"""The Telegram simulator (`simulate`): a world that plays a timeline like Telegram would.

It delivers to the bot exactly the updates Telegram delivers, as Bot API `Update` JSON that
goes through the same adapter as `replay`, and answers the engine's gateway calls from the
world's state (`sim/world.py`) — refusing them the way Telegram does. `simulate` and `demo` run on it.
"""

from __future__ import annotations

import itertools
import zlib
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from tgsync_cli.core.errors import TelegramError
from tgsync_cli.core.events import MemberState, RequestsDue
from tgsync_cli.core.join_policy import set_policy
from tgsync_cli.core.requests import new_request
from tgsync_cli.core.rules import ANONYMOUS_ADMIN_ID, parse_iso
from tgsync_cli.sim.world import ADMINS, PAGE, Sent, SimChat, SimGateway, World, _present  # noqa: F401
from tgsync_cli.sources.botapi import parse_update

class Simulator:
    """Plays a validated scenario against an engine factory (a restart builds a new engine)."""

    def __init__(self, scenario: Dict[str, Any], engine_factory: Callable[[SimGateway], Any]):
        self.world = World(scenario)
        self.timeline = scenario.get("timeline", [])
        self.gateway = SimGateway(self.world)
        self._factory = engine_factory
        self.engine = engine_factory(self.gateway)
        self.online = True
        self.lost_updates = 0
        self.delivered = 0
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        # updates about what the bot's own calls changed, delivered once the current one is handled
        self._echoes: List[Callable[[], None]] = []
        self._draining = False
        self._declines = False  # a club declines old join requests: looked at every step
        self.gateway.on_change = self._echo

    def run(self) -> None:
        for step in self.timeline:
            self.step(step)
        self.engine.flush()

    def step(self, step: Dict[str, Any]) -> None:
        now = parse_iso(step["at"])
        if self.world.now is not None and now.isocalendar()[:2] != self.world.now.isocalendar()[:2]:
            # serve flushes every few minutes; a timeline spanning weeks flushes at least weekly, so
            # writers per week (stats) come out as a running bot would leave them
            self.engine.flush()
        self.world.now = now
        getattr(self, "do_" + step["do"])(step)
        self._drain()
        if self._declines:
            self.engine.join_requests.decline_stale(now)

    # -- delivery ---------------------------------------------------------------------------
    def _ts(self) -> int:
        assert self.world.now is not None, "a step runs at a time"
        return int(self.world.now.replace(tzinfo=timezone.utc).timestamp())

    def _deliver(self, update: Dict[str, Any]) -> None:
        if not self.online:
            self.lost_updates += 1
            return
        update["update_id"] = next(self._update_ids)
        self.delivered += 1
        for event in parse_update(update):
            self.engine.handle(event)
        self._drain()

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while self._echoes:
                self._echoes.pop(0)()
        finally:
            self._draining = False

    def _echo(self, chat: SimChat, uid: int, old: MemberState, new: MemberState, kind: str) -> None:
        """What Telegram sends after the bot approved, banned or unbanned someone: the member
        event (to an admin bot, which it is) and the service message, as for anyone else's act."""
        bot = self.world.bot.id

        link = self._link(chat, chat.request_links.pop(uid, None), None) if kind == "approved" else None

        def deliver() -> None:
            self._member_event(chat, uid, old, new, bot, link, via_join_request=kind == "approved" and link is None)
            if kind == "approved":
                self._message(chat, uid, new_chat_members=[self._user(uid)])
            elif kind == "banned" and _present(old):
                self._message(chat, bot, left_chat_member=self._user(uid))
        self._echoes.append(deliver)

    def _user(self, uid: int) -> Dict[str, Any]:
        p = self.world.users[uid] if uid != self.world.bot.id else self.world.bot
        d = {"id": p.id, "is_bot": p.is_bot, "first_name": p.first_name}
        if p.username:
            d["username"] = p.username
        if p.last_name:
            d["last_name"] = p.last_name
        return d

    def _chat(self, chat: SimChat) -> Dict[str, Any]:
        d = {"id": chat.id, "type": chat.type, "title": chat.title}
        if chat.username:
            d["username"] = chat.username
        return d

    @staticmethod
    def _member(user: Dict[str, Any], state: MemberState) -> Dict[str, Any]:
        d: Dict[str, Any] = {"user": user, "status": state.status}
        if state.status == "restricted":
            d["is_member"] = state.is_member
        return d

    def _actor(self, step, chat: SimChat, default: Optional[int] = None) -> int:
        if step.get("by") is not None:
            return step["by"]
        if default is not None:
            return default
        owner = [uid for uid, s in chat.members.items() if s.status == "creator"]
        return owner[0] if owner else next(iter(chat.members), self.world.bot.id)

    def _member_event(self, chat: SimChat, uid: int, old: MemberState, new: MemberState, actor: int,
                      link: Optional[Dict[str, Any]] = None, via_join_request: bool = False):
        """A chat_member update: Telegram sends these only to an admin bot."""
        if self.world.bot_admin(chat.id):
            update = {"chat": self._chat(chat), "from": self._user(actor), "date": self._ts(),
                      "old_chat_member": self._member(self._user(uid), old),
                      "new_chat_member": self._member(self._user(uid), new)}
            if link is not None:
                update["invite_link"] = link
            if via_join_request:
                update["via_join_request"] = True
            self._deliver({"chat_member": update})

    def _bot_event(self, chat: SimChat, old: MemberState, new: MemberState, actor: int):
        self._deliver({"my_chat_member": {
            "chat": self._chat(chat), "from": self._user(actor), "date": self._ts(),
            "old_chat_member": self._member(self._user(self.world.bot.id), old),
            "new_chat_member": {**self._member(self._user(self.world.bot.id), new),
                                **({"can_invite_users": chat.bot_can_invite}
                                   if new.status == "administrator" else {})}}})

    def _message(self, chat: SimChat, sender: Optional[int], **fields):
        """A group message or service message; only delivered while the bot is in the chat.
        A channel has no service messages about subscribers, and its posts come as channel_post."""
        if not self.world.bot_in(chat.id):
            return
        if chat.type == "channel":
            if "text" in fields or "sticker" in fields:
                self._deliver({"channel_post": {"message_id": next(self._message_ids),
                                                "date": self._ts(), "chat": self._chat(chat),
                                                "sender_chat": self._chat(chat),
                                                "text": fields.get("text") or "👟"}})
            return
        msg = {"message_id": next(self._message_ids), "date": self._ts(), "chat": self._chat(chat)}
        if sender is not None:
            msg["from"] = self._user(sender)
        msg.update(fields)
        self._deliver({"message": msg})

    def _set(self, chat: SimChat, uid: int, new: MemberState, actor: int,
             link: Optional[Dict[str, Any]] = None, via_join_request: bool = False) -> MemberState:
        old = chat.state(uid)
        chat.members[uid] = new
        self._member_event(chat, uid, old, new, actor, link, via_join_request)
        return old

    # -- the bot's own membership -----------------------------------------------------------------
    def _set_bot(self, step, status: str) -> None:
        chat = self.world.chat(step["chat"])
        if step.get("can_invite_users") is not None:
            chat.bot_can_invite = step["can_invite_users"]
        old, new = chat.bot, MemberState(status)
        chat.bot = new
        actor = self._actor(step, chat)
        self._bot_event(chat, old, new, actor)
        if not _present(old) and _present(new):
            self._message(chat, actor, new_chat_members=[self._user(self.world.bot.id)])

    def do_add_bot(self, step):
        self._set_bot(step, step["as"])

    def do_promote_bot(self, step):
        self._set_bot(step, "administrator")

    def do_demote_bot(self, step):
        self._set_bot(step, "member")

    def do_remove_bot(self, step):
        self._set_bot(step, "left")

    # -- other members ----------------------------------------------------------------------------
    def do_join(self, step):
        chat, uid = self.world.chat(step["chat"]), step["user"]
        if _present(chat.state(uid)):
            return
        # A banned user comes back only through an admin, which lifts the ban: same updates.
        link = None
        if step.get("link") is not None:
            # Bot API shows links other admins made with their tail hidden; the name is whole
            creator = step.get("link_by") or self._actor({}, chat)
            tail = zlib.crc32(f"{chat.id}/{step['link']}".encode()) % 10**8
            link = {"invite_link": f"https://t.me/+{tail:08d}…",
                    "creator": self._user(creator), "creates_join_request": False,
                    "is_primary": False, "is_revoked": False, "name": step["link"]}
        self._set(chat, uid, MemberState("member"), uid, link)
        self._message(chat, uid, new_chat_members=[self._user(uid)])

    def do_leave(self, step):
        chat, uid = self.world.chat(step["chat"]), step["user"]
        if not _present(chat.state(uid)):
            return
        self._set(chat, uid, MemberState("left"), uid)
        self._message(chat, uid, left_chat_member=self._user(uid))

    def do_kick(self, step):
        chat, uid = self.world.chat(step["chat"]), step["user"]
        actor = self._actor(step, chat)
        was = chat.state(uid)
        self._set(chat, uid, MemberState("kicked"), actor)
        if _present(was):
            self._message(chat, actor, left_chat_member=self._user(uid))

    def do_unban(self, step):
        chat, uid = self.world.chat(step["chat"]), step["user"]
        if chat.state(uid).status == "kicked":
            self._set(chat, uid, MemberState("left"), self._actor(step, chat))

    def do_promote(self, step):
        chat, uid = self.world.chat(step["chat"]), step["user"]
        if _present(chat.state(uid)) and chat.state(uid).status != "creator":
            self._set(chat, uid, MemberState("administrator"), self._actor(step, chat))

    def do_demote(self, step):
        chat, uid = self.world.chat(step["chat"]), step["user"]
        if chat.state(uid).status == "administrator":
            self._set(chat, uid, MemberState("member"), self._actor(step, chat))

    # -- messages ---------------------------------------------------------------------------------
    def _reaches_bot(self, chat: SimChat, text: str, reply_to_bot: bool = False) -> bool:
        """Telegram's privacy mode: a non-admin bot with privacy on gets commands that
        name it (`/cmd@bot`) and replies to its own messages; not mentions, not a bare `/cmd`."""
        if not self.world.privacy_mode or self.world.bot_admin(chat.id) or reply_to_bot:
            return True
        words = text.split()
        command = words[0] if words and words[0].startswith("/") else ""
        _, _, named = command.partition("@")
        return bool(named) and named.lower() == (self.world.bot.username or "").lower()

    def do_message(self, step):
        chat, uid, text = self.world.chat(step["chat"]), step["user"], step.get("text") or ""
        if chat.migrated_to is not None or not _present(chat.state(uid)):
            return  # the old basic group is gone; and only members can post
        if chat.type == "channel" and chat.state(uid).status not in ADMINS:
            return  # only a channel's admins post in it
        reply = bool(step.get("reply_to_bot"))
        if self._reaches_bot(chat, text, reply):
            # no text: a sticker or photo, which has no `text` field at all (never "")
            fields: Dict[str, Any] = {"text": text} if text else {"sticker": {"emoji": "👟"}}
            if reply:
                fields["reply_to_message"] = {"message_id": 1, "date": self._ts(),
                                              "chat": self._chat(chat),
                                              "from": self._user(self.world.bot.id)}
            self._message(chat, uid, **fields)

    def do_anonymous_message(self, step):
        chat, text = self.world.chat(step["chat"]), step.get("text") or ""
        if chat.migrated_to is None and self._reaches_bot(chat, text):
            body = {"text": text} if text else {"sticker": {"emoji": "👟"}}
            self._message(chat, ANONYMOUS_ADMIN_ID, sender_chat=self._chat(chat), **body)

    def _private_bot_event(self, uid: int, blocked: bool) -> None:
        old, new = (MemberState("member"), MemberState("kicked"))[::1 if blocked else -1]
        self._deliver({"my_chat_member": {
            "chat": {"id": uid, "type": "private", "first_name": self.world.users[uid].first_name},
            "from": self._user(uid), "date": self._ts(),
            "old_chat_member": self._member(self._user(self.world.bot.id), old),
            "new_chat_member": self._member(self._user(self.world.bot.id), new)}})

    def do_block_bot(self, step):
        self.world.blocked.add(step["user"])
        self._private_bot_event(step["user"], True)

    def do_unblock_bot(self, step):
        self.world.blocked.discard(step["user"])
        self._private_bot_event(step["user"], False)

    def do_start(self, step):
        uid = step["user"]
        self.world.started.add(uid)
        if uid in self.world.blocked:  # pressing Start in a blocked bot unblocks it first
            self.do_unblock_bot(step)
        payload = step.get("payload")
        text = "/start" + (f" {payload}" if payload else "")
        self._deliver({"message": {"message_id": next(self._message_ids), "date": self._ts(),
                                   "chat": {"id": uid, "type": "private",
                                            "first_name": self.world.users[uid].first_name},
                                   "from": self._user(uid), "text": text}})

    def do_migrate(self, step):
        old = self.world.chat(step["chat"])
        new = SimChat(step["to"], "supergroup", old.title, dict(old.members), old.bot,
                      migrated_from=old.id, username=old.username)
        self.world.chats[new.id] = new
        actor = self._actor(step, old)
        bot_was_in = self.world.bot_in(old.id)
        if bot_was_in:
            self._message(old, actor, migrate_to_chat_id=new.id)
        old.migrated_to = new.id
        if bot_was_in:
            self._message(new, None, migrate_from_chat_id=old.id, sender_chat=self._chat(new))

    # -- operator actions -----------------------------------------------------------------------------
    def _club(self, step):
        info = self.engine.club(step["chat"])
        if info is None:
            self.engine.note(f"{step['do']}: chat {step['chat']} has no club")
        return info

    def do_post_invite(self, step):
        info = self._club(step)
        if info is not None:
            self.engine.post_invite(info)

    def do_import_admins(self, step):
        info = self._club(step)
        if info is not None:
            self.engine.import_admins(info, self.world.now)

    def do_import_members(self, step):
        info = self._club(step)
        if info is not None:
            try:
                self.engine.import_members(info, self.world.now)
            except TelegramError as exc:
                self.engine.note(f"import_members {step['chat']}: {exc}")

    def do_reconcile(self, step):
        info = self._club(step)
        if info is not None:
            try:
                self.engine.reconcile(info, self.world.now,
                                      allow_mass_departure=bool(step.get("yes")))
            except TelegramError as exc:
                self.engine.note(f"reconcile {step['chat']}: {exc}")

    # -- join requests and the app's requests ----------------------------------------------------
    def _now(self) -> datetime:
        assert self.world.now is not None, "a step runs at a time"
        return self.world.now

    def _link(self, chat: SimChat, name: Optional[str], creator: Optional[int]) -> Optional[Dict[str, Any]]:
        if name is None:
            return None
        tail = zlib.crc32(f"{chat.id}/{name}".encode()) % 10**8
        return {"invite_link": f"https://t.me/+{tail:08d}…", "creator": self._user(creator or self._actor({}, chat)),
                "creates_join_request": True, "is_primary": False, "is_revoked": False, "name": name}

    def do_request_join(self, step):
        """The user asks to join through a join-request link. Someone already in, or banned, cannot
        (Telegram answers them itself); asking again while pending changes nothing."""
        chat, uid = self.world.chat(step["chat"]), step["user"]
        state = chat.state(uid)
        if chat.migrated_to is not None or _present(state) or state.status == "kicked" or uid in chat.requests:
            return
        chat.requests[uid] = self._now()
        if self.world.bot_may_invite(chat.id):  # only such a bot is told of join requests
            request = {"chat": self._chat(chat), "from": self._user(uid), "user_chat_id": uid,
                       "date": self._ts()}
            link = self._link(chat, step.get("link"), None)
            if link is not None:
                request["invite_link"] = link
                chat.request_links[uid] = step["link"]
            self._deliver({"chat_join_request": request})

    def do_approve_request(self, step):
        chat, uid = self.world.chat(step["chat"]), step["user"]
        if chat.requests.pop(uid, None) is None or _present(chat.state(uid)):
            return  # HIDE_REQUESTER_MISSING / USER_ALREADY_PARTICIPANT in the admin's app
        link = self._link(chat, chat.request_links.pop(uid, None), None)
        self._set(chat, uid, MemberState("member"), self._actor(step, chat), link,
                  via_join_request=link is None)
        self._message(chat, uid, new_chat_members=[self._user(uid)])

    def do_decline_request(self, step):
        """An admin declines: the request is gone, and Telegram tells the bot nothing."""
        chat = self.world.chat(step["chat"])
        chat.requests.pop(step["user"], None)
        chat.request_links.pop(step["user"], None)

    def do_policy(self, step):
        info = self._club(step)
        if info is not None:
            set_policy(self.engine.store, info.club_id, step["join"], step.get("decline_after"), info)
            self._declines = self._declines or step.get("decline_after") is not None

    def do_app(self, step):
        """The app writes a request; a running serve applies it at its next poll (here, now)."""
        info = self._club(step)
        if info is None:
            return
        self.engine.store.add_request(new_request(
            info.club_id, step["user"], step["action"], step.get("by"), self._now(),
            force=bool(step.get("force")), yes=bool(step.get("yes"))))
        self.engine.handle(RequestsDue(self._now()))

    def do_restart_bot(self, step):
        self.engine.flush()  # a graceful restart writes what it buffered
        notes = self.engine.notes
        self.engine = self._factory(self.gateway)
        self.engine.notes = notes
        if self.online:
            self.engine.startup_check(self.world.now)

    def do_bot_offline(self, step):
        self.online = False

    def do_bot_online(self, step):
        """Back after an outage: serve's start-up check runs before any update is applied."""
        self.online = True
        self.engine.startup_check(self.world.now)
