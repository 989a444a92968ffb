"""The bot's own membership: clubs appear, admins are imported, the welcome is posted.

Also the start-up check: what Telegram says now about the bot in every club, applied as a
bot-status event of this moment, so a removal, demotion or migration missed while the bot was
down is known before the first update is applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Optional

from tgsync_cli.core.clubs import BotSelf, ClubDirectory, Note
from tgsync_cli.core.errors import BotNotInChat, TelegramError
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState
from tgsync_cli.core.evidence import ACTIVE
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.roster import RosterSync
from tgsync_cli.core.rules import club_status, is_person
from tgsync_cli.core.store import Store
from tgsync_cli.core.welcome import Welcome

ADMIN_STATUSES = ("administrator", "creator")


class BotStatusHandler:
    def __init__(self, clubs: ClubDirectory, store: Store, gateway: TelegramGateway, me: BotSelf,
                 roster: RosterSync, welcome: Welcome, dm_blocked: Dict[int, bool], note: Note) -> None:
        self.clubs = clubs
        self.store = store
        self.gateway = gateway
        self.me = me
        self.roster = roster
        self.welcome = welcome
        self.dm_blocked = dm_blocked
        self.note = note

    def __call__(self, ev: BotStatusChanged) -> None:
        if ev.chat.type == "private":  # the user blocked (kicked) or unblocked the bot
            if ev.chat.id > 0:
                blocked = club_status(ev.new) == "kicked"
                self.dm_blocked[ev.chat.id] = blocked  # also for someone with no account yet
                self.store.set_dm_blocked(ev.chat.id, blocked, ev.at)
            return
        if ev.chat.type == "channel":
            self.note(f"bot status in channel {ev.chat.id} ignored: only groups are clubs")
            return
        if ev.bot is not None:
            self.me.id = self.me.id or ev.bot.id
            self.me.username = self.me.username or ev.bot.username
        present = club_status(ev.new) == ACTIVE
        admin = ev.new.status in ADMIN_STATUSES
        was_present = club_status(ev.old) == ACTIVE
        was_admin = ev.old.status in ADMIN_STATUSES
        fields: Dict[str, Any] = {"bot_is_admin": admin, "bot_present": present, "bot_status_at": ev.at}
        if ev.can_invite_users is not None or not admin:
            fields["bot_can_invite_users"] = bool(ev.can_invite_users) if admin else False
        info = self.clubs.club(ev.chat.id)
        if info is None:
            if not present:
                self.note(f"bot left chat {ev.chat.id}, which has no club: nothing to do")
                return
            created_by: Optional[str] = None
            if ev.actor is not None and is_person(ev.actor, self.me.id):
                created_by = self.store.upsert_user(ev.actor, ev.at)
            doc, created = self.store.create_club(ev.chat.id, ev.chat.title or str(ev.chat.id),
                                                  created_by, fields, username=ev.chat.username)
            info = self.clubs.remember(doc)
            if not created and not self.store.update_sync(info.club_id, fields, guard_at=ev.at):
                return
        else:
            created = False
            if not self.store.update_sync(info.club_id, fields, guard_at=ev.at):
                return  # an older bot-status event than the one already applied
            if ev.chat.username is not None and ev.chat.username != info.username:
                self.clubs.note_username(info, ev.chat.username)
        self.clubs.set_bot_status(info, admin, present)
        if "bot_can_invite_users" in fields:
            info.bot_can_invite = fields["bot_can_invite_users"]
        # whatever creates the club imports its admins: a promotion of a bot that was already in
        # the group, with no "added" event ever seen, included
        if present and (created or not was_present or (admin and not was_admin)):
            self.roster.import_admins(info, ev.at)
        if present:
            self.welcome.post_once(info)

    def startup_check(self, at: datetime) -> None:
        """What Telegram says now about the bot in every club (one call each), applied as a
        bot-status event of this moment."""
        bot_id = self.me.id
        if bot_id is None:
            try:
                bot_id = self.me.id = self.gateway.me().id
            except TelegramError as exc:
                self.note(f"start-up check skipped: {exc}")
                return
        for info in self.clubs.clubs():
            try:
                state = self.clubs.tg(info, self.gateway.get_member, bot_id).state
            except BotNotInChat:
                state = MemberState("left")
            except TelegramError as exc:
                self.note(f"start-up check of {info.chat_id} skipped: {exc}")
                continue
            present = club_status(state) == ACTIVE
            admin = state.status in ADMIN_STATUSES
            if (present, admin) == (info.bot_present, info.bot_is_admin):
                continue  # as the store has it: nothing to write
            old = MemberState("administrator" if info.bot_is_admin
                              else "member" if info.bot_present else "left")
            self.note(f"start-up check: the bot is now {state.status} in {info.chat_id}")
            self(BotStatusChanged(ChatRef(info.chat_id, "supergroup", info.name), None, old, state, at))
