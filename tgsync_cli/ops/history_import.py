"""import-history (route 7): a Desktop export's last evidence per user, verified with Telegram."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from pymongo import UpdateOne

from tgsync_cli.core.errors import (
    AdminRequired,
    BotNotInChat,
    ConfigError,
    PeerUnknown,
    TelegramError,
    TelegramUnavailable,
    TgsyncError,
)
from tgsync_cli.core.events import MemberState, Person
from tgsync_cli.core.gateway import ChatMemberInfo
from tgsync_cli.core.rules import club_status, is_person
from tgsync_cli.ops.common import ACTIVE, GatewayFactory, resolve_chat_id
from tgsync_cli.ops.doctor import _bot_id
from tgsync_cli.runtime.config import Settings
from tgsync_cli.stores.documents import Store, member_change, new_id


@dataclass
class HistoryReport:
    chat_id: int
    club_id: str = ""
    club_created: bool = False
    verified: bool = True
    messages_read: int = 0
    candidates: int = 0
    added: int = 0
    already_known: int = 0
    reactivated: int = 0
    refused: int = 0
    skipped: int = 0
    skip_reasons: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def as_json(self) -> Dict[str, Any]:
        return asdict(self)


def import_history(store: Store, gateway, scan, chat_id: int, verify: bool, at: datetime,
                   bot_id: Optional[int] = None) -> HistoryReport:
    """Route 7 (SPEC §4). Telegram is asked first and nothing is written until every answer is in,
    so a refused or unreachable Telegram leaves the store as it was. Writes are bulk: one for the
    accounts, one for the memberships, whatever the number of candidates."""
    report = HistoryReport(chat_id=chat_id, verified=verify, messages_read=scan.messages_read,
                           candidates=len(scan.candidates))
    skips: Counter = Counter()
    export_id = _export_chat_id(scan)
    if export_id is not None and export_id != chat_id:
        report.notes.append(f"the export is of chat {export_id}; imported into {chat_id} as --chat says")
    doc = store.club_by_group(chat_id)
    known = {m["telegram_id"]: m for m in (doc or {}).get("members", [])}
    departures = {}
    if doc is not None:
        departures = {d["telegram_id"]: d for d in store.departures.find(
            {"club_id": doc["_id"], "telegram_id": {"$in": list(scan.candidates)}})}

    # (person, status_at, evidence) of each candidate to add; (member, at) of each to reactivate
    to_add: List[Tuple[Person, datetime, Any]] = []
    to_reactivate: List[Tuple[dict, datetime]] = []
    listed, whole = _member_listing(gateway, chat_id) if verify else ({}, False)
    for tid, ev in scan.candidates.items():
        person = Person(id=tid, first_name=ev.display_name or "")
        if not is_person(person, bot_id):
            skips["not a person (bot or Telegram stand-in)"] += 1
            continue
        m = known.get(tid)
        if m is not None and m.get("status") == ACTIVE:
            report.already_known += 1
            continue
        if verify:
            if tid in listed or whole:  # the listing answers: no per-user call (PeerIdInvalid risk)
                info = listed.get(tid) or ChatMemberInfo(person, MemberState("left"))
            else:
                try:
                    info = gateway.get_member(chat_id, tid)
                except (BotNotInChat, TelegramUnavailable) as exc:
                    raise TgsyncError(f"cannot verify candidates: {exc}; nothing imported "
                                      "(add the bot to the group, or use --no-verify)") from None
                except PeerUnknown:
                    skips["Telegram does not know the user to the bot"] += 1
                    continue
                except AdminRequired:
                    skips["checking other members needs the bot to be an admin"] += 1
                    continue
                except TelegramError as exc:
                    skips[f"Telegram error: {exc}"[:120]] += 1
                    continue
            if info.person.is_bot:
                skips["not a person (bot or Telegram stand-in)"] += 1
                continue
            if club_status(info.state) != ACTIVE:
                if m is None:
                    report.refused += 1
                else:
                    report.already_known += 1  # known and not active: history never downgrades
                continue
            if is_person(info.person) and info.person.first_name:
                person = info.person
            status_at = at
        else:
            if not ev.present:
                if m is None:
                    skips["last evidence is a leave (no membership to record)"] += 1
                else:
                    report.already_known += 1
                continue
            status_at = ev.at
            dep = departures.get(tid)
            if m is None and dep is not None and dep["at"] >= ev.at:
                skips["a later leave is already recorded"] += 1
                continue
        if m is None:
            to_add.append((person, status_at, ev))
        elif m.get("status_at") is None or m["status_at"] < status_at:
            to_reactivate.append((m, status_at))
        else:
            report.already_known += 1

    if doc is None:
        doc, report.club_created = store.create_club(chat_id, scan.chat_name or str(chat_id), None, {})
    report.club_id = doc["_id"]
    user_ids = _ensure_accounts(store, [p for p, _, _ in to_add], fresh=verify, at=at)
    cid = doc["_id"]
    fresh = {person.id: {
        "user_id": user_ids.get(person.id), "telegram_id": person.id, "username": person.username,
        "first_name": person.first_name, "role": "member", "status": ACTIVE, "joined_at": ev.at,
        "last_seen": ev.at, "source": "history_import", "status_at": status_at, "role_at": None}
        for person, status_at, ev in to_add}
    ids = list(fresh)
    reactivations = []
    for m, status_at in to_reactivate:
        change = member_change(cid, m["telegram_id"], status_at, m, ACTIVE, None, strictly_newer=True)
        if change is not None:
            reactivations.append(UpdateOne(change[0], change[1]))
    store.add_members(cid, list(fresh.values()), reactivations)
    if fresh:
        store.departures.delete_many({"club_id": cid, "telegram_id": {"$in": ids}})
    report.added, report.reactivated = len(to_add), len(to_reactivate)
    report.skipped = sum(skips.values())
    report.skip_reasons = dict(skips)
    return report


def _member_listing(gateway, chat_id: int) -> Tuple[Dict[int, ChatMemberInfo], bool]:
    """An admin bot lists the group once (200 a page) instead of asking about each candidate:
    Telegram answers get_member only for users the bot has met, a listing names everyone. The
    listing is whole when it holds as many as Telegram counts (at most 10,000 are listed); a
    candidate missing from a whole listing is not a member. Non-admin bots get ({}, False)."""
    try:
        listed = {m.person.id: m for page in gateway.iter_member_pages(chat_id) for m in page}
        return listed, len(listed) >= gateway.member_count(chat_id)
    except (BotNotInChat, TelegramUnavailable) as exc:
        raise TgsyncError(f"cannot verify candidates: {exc}; nothing imported "
                          "(add the bot to the group, or use --no-verify)") from None
    except TelegramError:  # not an admin (or listing refused): ask about each candidate
        return {}, False


def _export_chat_id(scan) -> Optional[int]:
    try:
        return scan.bot_api_id()
    except Exception:  # an export whose type has no Bot API id (e.g. a private chat)
        return None


def _ensure_accounts(store: Store, people: List[Person], fresh: bool, at: datetime) -> Dict[int, str]:
    """Accounts for new members in one bulk write. Names Telegram just gave us (`fresh`) update
    the account; an export's display name only fills an account that does not exist yet."""
    if not people:
        return {}
    if fresh:
        return store.upsert_users(people, at)
    ops = [UpdateOne({"telegram_id": p.id},
                     {"$setOnInsert": {"_id": new_id("user"), "telegram_id": p.id,
                                       "username": None, "first_name": p.first_name,
                                       "last_name": None, "language_code": None,
                                       "created_at": at, "updated_at": at}}, upsert=True)
           for p in people]
    store.users.bulk_write(ops, ordered=False)
    ids = [p.id for p in people]
    return {d["telegram_id"]: d["_id"]
            for d in store.users.find({"telegram_id": {"$in": ids}}, {"telegram_id": 1})}


def import_history_file(store: Store, path: str, chat: str, verify: bool, at: datetime,
                        gateway_factory: Optional[GatewayFactory] = None,
                        settings: Optional[Settings] = None, progress=None) -> HistoryReport:
    """Scan the whole file first (a bad export is refused before Telegram or the store is
    touched), then verify and write."""
    from tgsync_cli.sources.desktop_export import scan_export

    chat_id = resolve_chat_id(store, chat)
    scan = scan_export(path, progress)
    bot_id = _bot_id(settings)
    if not verify:
        return import_history(store, None, scan, chat_id, False, at, bot_id)
    if gateway_factory is None:
        raise ConfigError("import-history needs Telegram to verify candidates (or pass --no-verify)")
    with gateway_factory(settings) as gw:
        return import_history(store, gw, scan, chat_id, True, at, bot_id)


