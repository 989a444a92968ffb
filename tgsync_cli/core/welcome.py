"""The welcome post and the invite button (route 2's message): posted once per club.

Once, across processes and retries: the store holds a claim with a token, released unless the
post is confirmed. The token is kept while the event is retried, so a retry whose first claim's
reply was lost recognises its own claim instead of reading it as another process's (the welcome
would be lost that way), and a post whose confirmation's reply was lost is confirmed, not posted
again.
"""

from __future__ import annotations

import uuid
from typing import Dict

from tgsync_cli.core.clubs import BotSelf, ClubDirectory, Note
from tgsync_cli.core.errors import TelegramError
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.models import ClubInfo
from tgsync_cli.core.rules import deep_link
from tgsync_cli.core.store import Store


class Welcome:
    def __init__(self, clubs: ClubDirectory, store: Store, gateway: TelegramGateway, me: BotSelf,
                 note: Note) -> None:
        self.clubs = clubs
        self.store = store
        self.gateway = gateway
        self.me = me
        self.note = note
        self._claims: Dict[str, str] = {}  # club id → token of a claim this process holds
        self._posted: Dict[str, str] = {}  # club id → token of a post not confirmed yet

    def post_once(self, info: ClubInfo) -> None:
        cid = info.club_id
        posted = self._posted.get(cid)
        if posted is not None:  # posted; only the confirmation's reply was lost
            self.store.confirm_welcome(cid, posted)
            del self._posted[cid]
            return
        token = self._claims.setdefault(cid, uuid.uuid4().hex)
        if not self.store.claim_welcome(cid, token):
            del self._claims[cid]  # another process holds it (and posts or releases it)
            return
        if self.post_invite(info, welcome=True):
            self._posted[cid] = self._claims.pop(cid)
            self.store.confirm_welcome(cid, token)
            del self._posted[cid]
        else:
            self.store.release_welcome(cid, token)
            del self._claims[cid]

    def text(self, info: ClubInfo, welcome: bool) -> str:
        head = (f"Hi {info.name or 'everyone'}! This group now syncs with Ayda Run."
                if welcome else f"{info.name or 'This group'} is on Ayda Run.")
        text = head + " Tap the button to register in the club."
        if welcome and not info.bot_is_admin:
            text += (" Make me an admin so that joins, leaves and promotions reach the roster"
                     " and everyone already here can be added at once.")
        elif welcome and info.bot_can_invite is False:
            text += (" Give me the right to add members (invite users) so that join requests can"
                     " be answered from the club's roster.")
        return text

    def post_invite(self, info: ClubInfo, welcome: bool = False) -> bool:
        username = self.me.username
        if not username:
            try:
                username = self.me.username = self.gateway.me().username
            except TelegramError as exc:
                self.note(f"invite for {info.chat_id} not posted: {exc}")
                return False
        link_as = username
        try:
            # the link names the club's id as it is after any migration the call discovers
            self.clubs.tg(info, lambda cid: self.gateway.send_group_message(
                cid, self.text(info, welcome), "Join the club in Ayda Run", deep_link(link_as, cid)))
            return True
        except TelegramError as exc:
            self.note(f"invite for {info.chat_id} not posted: {exc}")
            return False
