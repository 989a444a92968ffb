"""Route 2: a deep link registers only members Telegram confirms — or, in a club whose join
policy is `roster`, someone whose join request is pending: for them Telegram's answer is the
request; registering approves it, and the join Telegram then sends makes them a member."""

from __future__ import annotations

from tgsync_cli.core.cache import MemberCache, cache_status
from tgsync_cli.core.clubs import BotSelf, ClubDirectory, Note
from tgsync_cli.core.errors import BotNotInChat, TelegramError, TelegramUnavailable, UserNeverStarted
from tgsync_cli.core.events import DeepLinkStart, Person
from tgsync_cli.core.evidence import ACTIVE, Observation
from tgsync_cli.core.gateway import TelegramGateway
from tgsync_cli.core.join_policy import ROSTER
from tgsync_cli.core.join_requests import JoinRequestHandler
from tgsync_cli.core.models import ClubInfo
from tgsync_cli.core.requests import APPROVED, GONE
from tgsync_cli.core.rules import club_status, is_person, parse_join_payload
from tgsync_cli.core.store import Store


class DeepLinkHandler:
    def __init__(self, clubs: ClubDirectory, store: Store, cache: MemberCache,
                 gateway: TelegramGateway, me: BotSelf, note: Note,
                 join_requests: JoinRequestHandler) -> None:
        self.clubs = clubs
        self.join_requests = join_requests
        self.store = store
        self.cache = cache
        self.gateway = gateway
        self.me = me
        self.note = note

    def __call__(self, ev: DeepLinkStart) -> None:
        user = ev.user
        if not is_person(user, self.me.id):
            return
        if ev.payload is None:
            self._reply(user, "Hi! Open the registration button in your club's Telegram group to join it on Ayda Run.")
            return
        chat_id = parse_join_payload(ev.payload)
        if chat_id is None:
            self._reply(user, "This link is not a valid club invitation. Use the button in your club's group.")
            return
        # No Telegram lookup for an id with no club: anyone can type any payload, and a link
        # naming a migrated group's old id finds its club and follows Telegram's answer (tg)
        info = self.clubs.club(chat_id, discover=False)
        if info is None:
            self._reply(user, "This group is not registered with Ayda Run. Ask an organizer to add the bot.")
            return
        try:
            state = self.clubs.tg(info, self.gateway.get_member, user.id).state
        except TelegramUnavailable as exc:
            self.note(f"deep link from {user.id} skipped: {exc}")
            return
        except BotNotInChat:
            self._reply(user, f"I am no longer in {info.name}, so I cannot confirm your membership. "
                              "Ask an organizer to add me back.")
            return
        except TelegramError as exc:
            self.note(f"deep link from {user.id}: membership check failed: {exc}")
            self._reply(user, "I could not check your membership right now. Please try again later.")
            return
        if club_status(state) != ACTIVE:
            # under the roster policy Telegram's answer for a requester is their pending request:
            # approving it is the question (a bot cannot list join requests), and the answer
            if state.status != "kicked" and info.join_policy == ROSTER and self._register_requester(info, user, ev):
                return
            self._reply(user, f"Join {info.name} on Telegram first, then press the button again.")
            return
        self._register(info, user, ev)

    def _register_requester(self, info: ClubInfo, user: Person, ev: DeepLinkStart) -> bool:
        """True when they had a request pending (approved now, or Telegram refused to)."""
        try:
            outcome, reason = self.join_requests.approve_registered(info, user, ev.at)
        except TelegramUnavailable as exc:
            self.note(f"deep link from {user.id} skipped: {exc}")
            return True
        if outcome == GONE:
            return False  # no request pending: they are simply not in the group
        if outcome != APPROVED:
            self.note(f"join request of {user.id} in {info.chat_id} not approved: {reason}")
            self._reply(user, f"I could not let you into {info.name} right now. Please try again later.")
            return True
        # registered: their account now; the membership comes with the join Telegram sends for
        # the approval, by the usual member events (so it holds only if Telegram let them in)
        self.store.upsert_user(user, ev.at)
        self._reply(user, f"Welcome! Your request to join {info.name} is approved, and you are "
                          "registered in the club on Ayda Run.")
        return True

    def _register(self, info: ClubInfo, user: Person, ev: DeepLinkStart) -> None:
        out = self.store.observe(info.club_id, Observation(user, ACTIVE, None, ev.at, "manual_registration"))
        cache_status(self.cache, info.club_id, user.id, out.status or "left")
        if out.before == ACTIVE:
            self._reply(user, f"You are already registered in {info.name}.")
            return
        self._reply(user, f"Welcome! You are now registered in {info.name} on Ayda Run.")

    def _reply(self, user: Person, text: str) -> None:
        try:
            self.gateway.send_private(user.id, text)
        except TelegramUnavailable as exc:
            self.note(f"reply to {user.id} skipped: {exc}")
        except (UserNeverStarted, TelegramError):
            pass
