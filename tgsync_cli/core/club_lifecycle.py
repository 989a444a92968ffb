"""The bot's own membership: clubs appear, admins are imported, the welcome is posted, groups migrate."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Optional

from tgsync_cli.core.errors import (
    TelegramError,
)
from tgsync_cli.core.events import (
    BotStatusChanged,
    ChatMigrated,
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
                                                  created_by, fields)
            info = self._remember(doc)
            if not created and not self.store.update_sync(info.club_id, fields, guard_at=ev.at):
                return
        elif not self.store.update_sync(info.club_id, fields, guard_at=ev.at):
            return  # an older bot-status event than the one already applied
        info.bot_is_admin, info.bot_present = admin, present
        if present and (not was_present or (admin and not was_admin)):
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
            admins = self.gateway.get_admins(info.chat_id)
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
            text += (" Make me an admin so joins, leaves and promotions reach the roster (route 3)"
                     " and the whole roster can be imported (route 6).")
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
            self.gateway.send_group_message(info.chat_id, self.welcome_text(info, welcome),
                                            "Join the club in Ayda Run",
                                            deep_link(username, info.chat_id))
            return True
        except TelegramError as exc:
            self.note(f"invite for {info.chat_id} not posted: {exc}")
            return False

    # -- migration ------------------------------------------------------------------------------
    def on_migrated(self, ev: ChatMigrated) -> None:
        info = self.club(ev.old_chat_id)
        if info is None or info.chat_id == ev.new_chat_id:
            return  # unknown, or the second of the two migration messages
        if self.club(ev.new_chat_id) is not None and self._clubs[ev.new_chat_id] is not info:
            self.note(f"chat {ev.old_chat_id} migrated to {ev.new_chat_id}, which already has a club: "
                      "both kept, run reconcile")
            return
        self.store.migrate_club(info.club_id, ev.old_chat_id, ev.new_chat_id)
        info.chat_id = ev.new_chat_id
        self._clubs[ev.new_chat_id] = info
        self._unknown.pop(ev.new_chat_id, None)
