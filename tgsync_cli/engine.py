"""The sync engine: SPEC §3 applied to domain events, against three small protocols.

Store (system of record), TelegramGateway (questions to Telegram, posts) and MemberCache
(known active members). The hot path — a message from a cached active member — is two dict
lookups and a `last_seen` note in memory; everything else is the slow path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, Iterable, List, Optional, Set, Tuple

from pymongo import UpdateOne

from tgsync_cli.cache import MemberCache
from tgsync_cli.errors import (BotNotInChat, TelegramError, TelegramUnavailable, TgsyncError,
                               UserNeverStarted)
from tgsync_cli.events import (BotStatusChanged, ChatMigrated, DeepLinkStart, MemberState,
                               MemberStatusChanged, MessageSeen, Person, RosterEntry,
                               RosterObserved)
from tgsync_cli.gateway import TelegramGateway
from tgsync_cli.rules import club_role, club_status, deep_link, is_person, parse_join_payload
from tgsync_cli.store import Store, member_change

log = logging.getLogger("tgsync.engine")

ACTIVE = "active"
UNKNOWN_CLUB_TTL = 60.0


@dataclass
class ClubInfo:
    """What the hot path and route 5 need about a club, kept in memory."""

    club_id: str
    chat_id: int
    name: str = ""
    bot_is_admin: bool = False
    bot_present: bool = False


@dataclass
class RosterResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    marked_left: int = 0
    listed_ids: Set[int] = field(default_factory=set)


@dataclass
class ReconcileReport:
    club_id: str
    chat_id: int
    name: str
    total_members_telegram: Optional[int]
    total_members_ayda: int
    drift: Optional[int]
    listed: bool
    reason: str
    added: int = 0
    marked_left: int = 0
    updated: int = 0
    bot_present: bool = True
    bot_is_admin: bool = False


class Engine:
    def __init__(self, store: Store, gateway: TelegramGateway, cache: MemberCache, *,
                 bot_id: Optional[int] = None, bot_username: Optional[str] = None,
                 welcome_dm: bool = False):
        self.store = store
        self.gateway = gateway
        self.cache = cache
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.welcome_dm = welcome_dm
        self.notes: List[str] = []
        self.last_seen: Dict[Tuple[str, int], datetime] = {}
        self._clubs: Dict[int, ClubInfo] = {}
        self._unknown: Dict[int, float] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """One query: the club map and the warm member cache (a restart costs one round trip)."""
        pairs = []
        for doc in self.store.club_index():
            info = self._remember(doc)
            pairs.extend((info.club_id, m["telegram_id"]) for m in doc.get("members", [])
                         if m.get("status") == ACTIVE)
        self.cache.warm(pairs)

    def flush(self) -> int:
        """Write buffered last_seen in one bulk write (interval flush and shutdown)."""
        if not self.last_seen:
            return 0
        seen, self.last_seen = self.last_seen, {}
        try:
            return self.store.flush_last_seen(seen)
        except Exception:
            for k, v in seen.items():  # nothing accepted is lost: keep for the next flush
                self._seen(k, v)
            raise

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info(text)

    def handle(self, event) -> None:
        kind = type(event)
        if kind is MessageSeen:
            self.on_message(event)
        elif kind is MemberStatusChanged:
            self.on_member_status(event)
        elif kind is BotStatusChanged:
            self.on_bot_status(event)
        elif kind is DeepLinkStart:
            self.on_start(event)
        elif kind is ChatMigrated:
            self.on_migrated(event)
        elif kind is RosterObserved:
            info = self.club(event.chat.id)
            if info is not None:
                self.apply_roster(info, event.entries, event.at, event.source, event.complete)
        else:
            raise TypeError(f"not an event: {event!r}")

    # -- clubs ------------------------------------------------------------------------------
    def _remember(self, doc: dict) -> ClubInfo:
        sync = doc.get("sync") or {}
        info = ClubInfo(doc["_id"], doc["telegram_group_id"], doc.get("name", ""),
                        bool(sync.get("bot_is_admin")), bool(sync.get("bot_present")))
        self._clubs[info.chat_id] = info
        for old in doc.get("previous_group_ids") or ():
            self._clubs[old] = info
        self._unknown.pop(info.chat_id, None)
        return info

    def club(self, chat_id: int) -> Optional[ClubInfo]:
        """From memory; unknown chats are asked of the store at most once a minute."""
        info = self._clubs.get(chat_id)
        if info is not None:
            return info
        until = self._unknown.get(chat_id)
        if until is not None and until > time.monotonic():
            return None
        doc = self.store.club_by_group(chat_id)
        if doc is None:
            self._unknown[chat_id] = time.monotonic() + UNKNOWN_CLUB_TTL
            return None
        return self._remember(doc)

    def clubs(self) -> List[ClubInfo]:
        seen, out = set(), []
        for info in self._clubs.values():
            if info.club_id not in seen:
                seen.add(info.club_id)
                out.append(info)
        return out

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
        if present and self.store.claim_welcome(info.club_id):
            if not self.post_invite(info, welcome=True):
                self.store.update_sync(info.club_id, {"welcome_posted": False})

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

    # -- other members' status (routes 3 and 5) ---------------------------------------------------
    def on_member_status(self, ev: MemberStatusChanged) -> None:
        if not is_person(ev.user, self.bot_id):
            return
        info = self.club(ev.chat.id)
        if info is None:
            return
        if ev.via == "service_message" and info.bot_is_admin:
            return  # an admin bot receives the richer member event for the same change
        created = self.apply_status(info, ev.user, club_status(ev.new), club_role(ev.new), ev.at,
                                    ev.via)
        if created and self.welcome_dm:
            self._welcome_dm(info, ev.user)

    def _welcome_dm(self, info: ClubInfo, user: Person) -> None:
        try:
            self.gateway.send_private(user.id, f"Welcome to {info.name} on Ayda Run!")
        except TelegramError:
            pass  # a failed welcome DM is not an error (SPEC §3)

    def apply_status(self, info: ClubInfo, person: Person, status: str, role: Optional[str],
                     at: datetime, source: str, strictly_newer: bool = False) -> bool:
        """Set a member's status as of `at`; create them if active and unknown. True if created."""
        cid, tid = info.club_id, person.id
        existing = self.store.member(cid, tid)
        if existing is not None:
            if status != ACTIVE:
                existing = self._message_evidence(cid, tid, existing, at)
            if self.store.set_member(cid, tid, at, existing, status, role, strictly_newer):
                self._cache_status(cid, tid, status)
            elif existing.get("status") == ACTIVE:
                self.cache.add(cid, tid)
            return False
        if status != ACTIVE:
            self.store.record_departure(cid, tid, status, at)  # no account, no membership
            self.cache.evict(cid, tid)
            return False
        departure = self.store.departure(cid, tid)
        status_at, role_at = at, (at if role is not None else None)
        if departure is not None and (departure["at"] > at or (strictly_newer and departure["at"] == at)):
            # the later leave still holds, and with it the role a leave maps to
            status, status_at, role, role_at = departure["status"], departure["at"], "member", departure["at"]
        elif departure is not None and role is None:
            role, role_at = "member", departure["at"]  # the leave's role stands until a newer role event
        user_id = self.store.upsert_user(person, at)
        doc = {"user_id": user_id, "telegram_id": tid, "username": person.username,
               "first_name": person.first_name, "role": role or "member", "status": status,
               "joined_at": at, "last_seen": None, "source": source, "status_at": status_at,
               "role_at": role_at}
        created = self.store.add_member(cid, doc)
        if not created:  # another process added them first: fall back to the guarded update
            current = self.store.member(cid, tid)
            if current is not None:
                self.store.set_member(cid, tid, at, current, status, role, strictly_newer)
        if departure is not None:
            self.store.clear_departure(cid, tid)
        self._cache_status(cid, tid, status)
        return created and status == ACTIVE

    def _message_evidence(self, cid: str, tid: int, existing: dict, at: datetime) -> dict:
        """A leave that arrives after a newer message (hot path: no status_at written) is late:
        the message proves membership after it. Record that proof first so the guard holds."""
        seen = max(filter(None, (self.last_seen.get((cid, tid)), existing.get("last_seen"))), default=None)
        if seen is None or seen <= at or (existing.get("status_at") and existing["status_at"] >= seen):
            return existing
        self.store.set_member(cid, tid, seen, existing, ACTIVE, None, strictly_newer=True)
        return self.store.member(cid, tid) or existing

    def _cache_status(self, cid: str, tid: int, status: str) -> None:
        if status == ACTIVE:
            self.cache.add(cid, tid)
        else:
            self.cache.evict(cid, tid)

    # -- messages (route 4) -------------------------------------------------------------------
    def on_message(self, ev: MessageSeen) -> None:
        s = ev.sender
        if (s is None or ev.sender_chat_id is not None or ev.is_automatic_forward
                or ev.chat.type in ("private", "channel") or not is_person(s, self.bot_id)):
            return
        info = self._clubs.get(ev.chat.id) or self.club(ev.chat.id)
        if info is None:
            return
        key = (info.club_id, s.id)
        if self.cache.is_active(info.club_id, s.id):  # hot path: no store, no network
            self._seen(key, ev.at)
            return
        existing = self.store.member(info.club_id, s.id)
        if existing is not None and existing.get("status") == ACTIVE:
            self.cache.add(info.club_id, s.id)
        elif existing is not None:
            if self.store.set_member(info.club_id, s.id, ev.at, existing, ACTIVE, None,
                                     strictly_newer=True):
                self.cache.add(info.club_id, s.id)
            else:
                return
        else:
            self.apply_status(info, s, ACTIVE, None, ev.at, "message_activity", strictly_newer=True)
        self._seen(key, ev.at)

    def _seen(self, key: Tuple[str, int], at: datetime) -> None:
        prev = self.last_seen.get(key)
        if prev is None or at > prev:
            self.last_seen[key] = at

    # -- deep links (route 2) ---------------------------------------------------------------------
    def on_start(self, ev: DeepLinkStart) -> None:
        user = ev.user
        if not is_person(user, self.bot_id):
            return
        if ev.payload is None:
            self._reply(user, "Hi! Open the registration button in your club's Telegram group to join it on Ayda Run.")
            return
        chat_id = parse_join_payload(ev.payload)
        if chat_id is None:
            self._reply(user, "This link is not a valid club invitation. Use the button in your club's group.")
            return
        info = self.club(chat_id)
        if info is None:
            self._reply(user, "This group is not registered with Ayda Run. Ask an organizer to add the bot.")
            return
        try:
            state = self.gateway.get_member(info.chat_id, user.id).state
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
            self._reply(user, f"Join {info.name} on Telegram first, then press the button again.")
            return
        existing = self.store.member(info.club_id, user.id)
        if existing is not None and existing.get("status") == ACTIVE:
            self.cache.add(info.club_id, user.id)
            self._reply(user, f"You are already registered in {info.name}.")
            return
        self.apply_status(info, user, ACTIVE, None, ev.at, "manual_registration")
        self._reply(user, f"Welcome! You are now registered in {info.name} on Ayda Run.")

    def _reply(self, user: Person, text: str) -> None:
        try:
            self.gateway.send_private(user.id, text)
        except TelegramUnavailable as exc:
            self.note(f"reply to {user.id} skipped: {exc}")
        except (UserNeverStarted, TelegramError):
            pass

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

    # -- listings (routes 1 and 6, reconcile) -----------------------------------------------------
    def apply_roster(self, info: ClubInfo, entries: Iterable[RosterEntry], at: datetime,
                     source: str, complete: bool = False) -> RosterResult:
        """A listing is an observation of each member's status at `at`; one bulk write per call."""
        result = RosterResult()
        people = {}
        for e in entries:
            if is_person(e.person, self.bot_id):
                people[e.person.id] = e
            else:
                result.skipped += 1
        result.listed_ids = set(people)
        doc = self.store.club_by_id(info.club_id) or {}
        known = {m["telegram_id"]: m for m in doc.get("members", [])}
        new = [e for tid, e in people.items() if tid not in known and club_status(e.state) == ACTIVE]
        user_ids = self.store.upsert_users([e.person for e in new], at) if new else {}
        ops: List[UpdateOne] = []
        fresh: List[dict] = []
        for tid, e in people.items():
            status, role = club_status(e.state), club_role(e.state)
            m = known.get(tid)
            if m is None:
                if status != ACTIVE:
                    continue
                p = e.person
                fresh.append({
                    "user_id": user_ids.get(tid), "telegram_id": tid, "username": p.username,
                    "first_name": p.first_name, "role": role, "status": status,
                    "joined_at": at, "last_seen": None, "source": source, "status_at": at,
                    "role_at": at})
                result.added += 1
            elif m.get("status") != status or m.get("role") != role:
                change = member_change(info.club_id, tid, at, m, status, role)
                if change is not None:
                    ops.append(UpdateOne(change[0], change[1]))
                    result.updated += 1
                    if change[2]:
                        self._cache_status(info.club_id, tid, status)
                else:
                    result.unchanged += 1
                continue
            else:
                result.unchanged += 1
            self._cache_status(info.club_id, tid, status)
        if complete:
            for tid, m in known.items():
                change = member_change(info.club_id, tid, at, m, "left", "member")
                if tid not in people and m.get("status") == ACTIVE and change is not None and change[2]:
                    ops.append(UpdateOne(change[0], change[1]))
                    self.cache.evict(info.club_id, tid)
                    result.marked_left += 1
        self.store.add_members(info.club_id, fresh, ops)
        return result

    def import_members(self, info: ClubInfo, at: datetime, progress=None) -> RosterResult:
        """Route 6: every member Telegram lists, one bulk write per page."""
        total = RosterResult()
        for page in self.gateway.iter_member_pages(info.chat_id):
            r = self.apply_roster(info, [RosterEntry(m.person, m.state) for m in page], at,
                                  "member_import")
            total.added += r.added
            total.updated += r.updated
            total.unchanged += r.unchanged
            total.skipped += r.skipped
            total.listed_ids |= r.listed_ids
            if progress is not None:
                progress(len(page))
        return total

    def reconcile(self, info: ClubInfo, at: datetime, dry_run: bool = False) -> ReconcileReport:
        """Counts always; a full roster diff where the bot may list members (SPEC §3)."""
        count: Optional[int] = None
        present, admin, listed, reason = info.bot_present, info.bot_is_admin, False, ""
        result = RosterResult()
        try:
            count = self.gateway.member_count(info.chat_id)
            present = True
        except BotNotInChat as exc:
            present, admin, reason = False, False, f"bot is not in the group ({exc})"
        if present:
            try:
                pages = list(self.gateway.iter_member_pages(info.chat_id))
                listed, admin = True, True
            except TelegramError as exc:
                reason = f"members cannot be listed: {exc}"
                pages = []
                if not isinstance(exc, TelegramUnavailable):
                    admin = False
            if listed and not dry_run:
                entries = [RosterEntry(m.person, m.state) for page in pages for m in page]
                whole = count is None or sum(len(p) for p in pages) >= count
                result = self.apply_roster(info, entries, at, "member_import", complete=whole)
                if not whole:
                    reason = "Telegram listed fewer members than it counts (server limit): none marked left"
            elif listed:
                result = self._dry_diff(info, [m for p in pages for m in p])
        ayda = self._active_count(info)
        humans = count
        if listed:
            humans = sum(1 for p in pages for m in p if is_person(m.person, self.bot_id)
                         and club_status(m.state) == ACTIVE)
        elif count is not None:
            humans = max(count - 1, 0)  # the count includes this bot
        drift = None if humans is None else abs(humans - ayda)
        if not dry_run:
            self.store.update_sync(info.club_id, {
                "last_sync": at, "bot_is_admin": admin, "bot_present": present,
                "total_members_telegram": count, "total_members_ayda": ayda, "drift": drift})
            info.bot_is_admin, info.bot_present = admin, present
            # departure records only bridge late deliveries; a week on, nothing late is coming
            self.store.prune_departures(at)
        return ReconcileReport(info.club_id, info.chat_id, info.name, count, ayda, drift, listed,
                               reason or "roster listed and compared", result.added,
                               result.marked_left, result.updated, present, admin)

    def _dry_diff(self, info: ClubInfo, members) -> RosterResult:
        doc = self.store.club_by_id(info.club_id) or {}
        active = {m["telegram_id"] for m in doc.get("members", []) if m.get("status") == ACTIVE}
        listed = {m.person.id for m in members
                  if is_person(m.person, self.bot_id) and club_status(m.state) == ACTIVE}
        return RosterResult(added=len(listed - active), marked_left=len(active - listed))

    def _active_count(self, info: ClubInfo) -> int:
        doc = self.store.club_by_id(info.club_id) or {}
        return sum(1 for m in doc.get("members", []) if m.get("status") == ACTIVE)
