"""The bot's own membership: clubs appear, admins are imported, the welcome is posted, groups migrate."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Optional

from tgsync_cli.core.errors import (
    BotNotInChat,
    ChatMigratedError,
    TelegramError,
)
from tgsync_cli.core.events import (
    BotStatusChanged,
    ChatMigrated,
    ChatRef,
    MemberState,
    RosterEntry,
)
from tgsync_cli.core.models import ACTIVE, ClubInfo, RosterResult
from tgsync_cli.core.rules import (
    club_status,
    deep_link,
    is_person,
)

log = logging.getLogger("tgsync.engine")
_POSTED = object()  # the welcome went out; its confirmation has not reached the store yet


class ClubLifecycle:
    """Part of Engine (see engine.py): relies on its store, gateway, cache and club map."""

    # -- bot's own membership (route 1 trigger) -------------------------------------------------
    def on_bot_status(self, ev: BotStatusChanged) -> None:
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
            self.bot_id = self.bot_id or ev.bot.id
            self.bot_username = self.bot_username or ev.bot.username
        present = club_status(ev.new) == ACTIVE
        admin = ev.new.status in ("administrator", "creator")
        was_present = club_status(ev.old) == ACTIVE
        was_admin = ev.old.status in ("administrator", "creator")
        fields = {"bot_is_admin": admin, "bot_present": present, "bot_status_at": ev.at}
        info = self.club(ev.chat.id)
        if info is None:
            if not present:
                self.note(f"bot left chat {ev.chat.id}, which has no club: nothing to do")
                return
            created_by = None
            if is_person(ev.actor, self.bot_id):
                created_by = self.store.upsert_user(ev.actor, ev.at)
            doc, created = self.store.create_club(ev.chat.id, ev.chat.title or str(ev.chat.id),
                                                  created_by, fields, username=ev.chat.username)
            info = self._remember(doc)
            if not created and not self.store.update_sync(info.club_id, fields, guard_at=ev.at):
                return
        else:
            created = False
            if not self.store.update_sync(info.club_id, fields, guard_at=ev.at):
                return  # an older bot-status event than the one already applied
            if ev.chat.username is not None and ev.chat.username != info.username:
                self.note_username(info, ev.chat.username)
        info.bot_is_admin, info.bot_present = admin, present
        # whatever creates the club imports its admins: a promotion of a bot that was already in
        # the group, with no "added" event ever seen, included
        if present and (created or not was_present or (admin and not was_admin)):
            self.import_admins(info, ev.at)
        if present:
            self._welcome(info)

    def _welcome(self, info: ClubInfo) -> None:
        """Post the welcome once. The claim is released unless the post is confirmed — also when
        the store's reply to the claim was lost after the write: the claim carries a token kept
        while this event is retried, so the retry recognises its own claim instead of reading it
        as another process's (the welcome was lost that way)."""
        claims = self.__dict__.setdefault("_welcome_claims", {})
        token = claims.get(info.club_id)
        if token is _POSTED:  # posted; only the confirmation's reply was lost
            self.store.confirm_welcome(info.club_id, claims.pop(info.club_id + ":token"))
            del claims[info.club_id]
            return
        if token is None:
            token = claims[info.club_id] = uuid.uuid4().hex
        if not self.store.claim_welcome(info.club_id, token):
            del claims[info.club_id]  # another process holds it (and posts or releases it)
            return
        if self.post_invite(info, welcome=True):
            claims[info.club_id], claims[info.club_id + ":token"] = _POSTED, token
            self.store.confirm_welcome(info.club_id, token)
            del claims[info.club_id], claims[info.club_id + ":token"]
        else:
            self.store.release_welcome(info.club_id, token)
            del claims[info.club_id]

    def import_admins(self, info: ClubInfo, at: datetime) -> Optional[RosterResult]:
        try:
            admins = self.tg(info, self.gateway.get_admins)
        except TelegramError as exc:
            self.note(f"admin import for {info.chat_id} skipped: {exc}")
            return None
        entries = [RosterEntry(a.person, a.state) for a in admins]
        return self.apply_roster(info, entries, at, "admin_import")

    def welcome_text(self, info: ClubInfo, welcome: bool) -> str:
        head = (f"Hi {info.name or 'everyone'}! This group now syncs with Ayda Run."
                if welcome else f"{info.name or 'This group'} is on Ayda Run.")
        text = head + " Tap the button to register in the club."
        if welcome and not info.bot_is_admin:
            text += (" Make me an admin so that joins, leaves and promotions reach the roster"
                     " and everyone already here can be added at once.")
        return text

    def post_invite(self, info: ClubInfo, welcome: bool = False) -> bool:
        username = self.bot_username
        if not username:
            try:
                username = self.bot_username = self.gateway.me().username
            except TelegramError as exc:
                self.note(f"invite for {info.chat_id} not posted: {exc}")
                return False
        try:
            # the link names the club's id as it is after any migration the call discovers
            self.tg(info, lambda cid: self.gateway.send_group_message(
                cid, self.welcome_text(info, welcome), "Join the club in Ayda Run",
                deep_link(username, cid)))
            return True
        except TelegramError as exc:
            self.note(f"invite for {info.chat_id} not posted: {exc}")
            return False

    # -- migration ------------------------------------------------------------------------------
    def on_migrated(self, ev: ChatMigrated) -> None:
        info = self.club(ev.old_chat_id, discover=False)
        if info is None or info.chat_id == ev.new_chat_id:
            return  # unknown, or the second of the two migration messages
        if self.club(ev.new_chat_id, discover=False) not in (None, info):
            self.note(f"chat {ev.old_chat_id} migrated to {ev.new_chat_id}, which already has a club: "
                      "both kept, run reconcile")
            return
        self.store.migrate_club(info.club_id, ev.old_chat_id, ev.new_chat_id)
        info.chat_id = ev.new_chat_id
        self._clubs[ev.new_chat_id] = info
        self._unknown.pop(ev.new_chat_id, None)

    def discover_migration(self, chat_id: int) -> Optional[ClubInfo]:
        """A chat with no club: if Telegram says it is the supergroup a known basic group became
        (full info's `migrated_from_chat_id`), the missed migration is applied now."""
        try:
            chat = self.gateway.chat_info(chat_id)
        except TelegramError:
            return None  # not reachable, or not a chat the bot is in: nothing to follow
        if chat.migrated_from is None:
            return None
        if self.club(chat.migrated_from, discover=False) is None:
            return None
        self.note(f"chat {chat.migrated_from} became supergroup {chat_id} while the bot was not "
                  "looking: the club follows it")
        self.on_migrated(ChatMigrated(chat.migrated_from, chat_id, None, chat.title))
        return self._clubs.get(chat_id)

    def tg(self, info: ClubInfo, call, *args):
        """`call(info.chat_id, *args)`; when Telegram answers that the group became a supergroup
        (a migration the bot missed), the club follows it and the call is made once more there."""
        try:
            return call(info.chat_id, *args)
        except ChatMigratedError as exc:
            old = info.chat_id
            self.note(f"chat {old} became supergroup {exc.new_chat_id} while the bot was not "
                      "looking: the club follows it")
            self.on_migrated(ChatMigrated(old, exc.new_chat_id, None))
            if info.chat_id == old:
                raise  # both ids have clubs: kept apart (noted), nothing to retry
            return call(info.chat_id, *args)

    def note_username(self, info: ClubInfo, username: str) -> None:
        """A public group's @username, as its chat object says: `roster @name` finds the club."""
        self.store.set_club_username(info.club_id, username)
        info.username = username

    def startup_check(self, at: datetime) -> None:
        """What Telegram says now about the bot in every club (one call each), applied as a
        bot-status event of this moment: a removal, demotion or migration missed while the bot
        was down is known before the first update is applied."""
        bot_id = self.bot_id
        if bot_id is None:
            try:
                bot_id = self.bot_id = self.gateway.me().id
            except TelegramError as exc:
                self.note(f"start-up check skipped: {exc}")
                return
        for info in self.clubs():
            try:
                state = self.tg(info, self.gateway.get_member, bot_id).state
            except BotNotInChat:
                state = MemberState("left")
            except TelegramError as exc:
                self.note(f"start-up check of {info.chat_id} skipped: {exc}")
                continue
            present = club_status(state) == ACTIVE
            admin = state.status in ("administrator", "creator")
            if (present, admin) == (info.bot_present, info.bot_is_admin):
                continue  # as the store has it: nothing to write
            old = MemberState("administrator" if info.bot_is_admin
                              else "member" if info.bot_present else "left")
            self.note(f"start-up check: the bot is now {state.status} in {info.chat_id}")
            self.on_bot_status(BotStatusChanged(ChatRef(info.chat_id, "supergroup", info.name),
                                                None, old, state, at))
