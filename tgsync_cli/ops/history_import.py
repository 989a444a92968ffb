"""import-history (route 7): a Desktop export's last evidence per user, verified with Telegram."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from tgsync_cli.core.documents import MemberDoc
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
from tgsync_cli.core.rules import club_role, club_status, is_person
from tgsync_cli.ops.common import ACTIVE, GatewayFactory, resolve_chat_id
from tgsync_cli.ops.doctor import _bot_id
from tgsync_cli.runtime.config import Settings
from tgsync_cli.core.store import Observation, Store


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
    recorded_left: int = 0  # of `added`: --no-verify people whose last evidence is leaving
    organizers: int = 0  # admins imported because this import created the club
    refused: int = 0
    skipped: int = 0
    skip_reasons: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def as_json(self) -> Dict[str, Any]:
        return asdict(self)


def import_history(store: Store, gateway, scan, chat_id: int, verify: bool, at: datetime,
                   bot_id: Optional[int] = None) -> HistoryReport:
    """Route 7, the history import. Telegram is asked first and nothing is written until every answer is in,
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
        departures = store.departures_for(doc["_id"], scan.candidates)

    # (person, status_at, evidence, status) of each candidate to add; (member, at) to reactivate
    to_add: List[Tuple[Person, datetime, Any, str]] = []
    to_reactivate: List[Tuple[MemberDoc, datetime]] = []
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
            status_at, status = at, ACTIVE
        else:
            # the last evidence is the status, a leave included (recorded as `left`)
            status_at, status = ev.at, ACTIVE if ev.present else "left"
            if not ev.present and m is not None:
                report.already_known += 1  # history never downgrades a known member
                continue
            dep = departures.get(tid)
            if m is None and dep is not None and dep["at"] >= ev.at:
                if ev.present:
                    skips["a later leave is already recorded"] += 1
                    continue
                status_at, status = dep["at"], dep["status"]  # the later departure stands
        if m is None:
            to_add.append((person, status_at, ev, status))
        elif (known_at := m.get("status_at")) is None or known_at < status_at:
            to_reactivate.append((m, status_at))
        else:
            report.already_known += 1

    admins = _admins_of_a_new_club(gateway, chat_id, bot_id, at, report) if doc is None and verify else []
    if doc is None:
        doc, report.club_created = store.create_club(chat_id, scan.chat_name or str(chat_id), None, {})
    report.club_id = doc["_id"]
    cid = doc["_id"]
    # one store call: accounts, memberships and departure notes in one transaction (SQLite).
    # A leaver (--no-verify) was a member until their last evidence: present, then left.
    obs: List[Observation] = list(admins) if report.club_created else []
    report.organizers = len(obs)
    for person, status_at, ev, status in to_add:
        obs.append(Observation(person, ACTIVE, None, status_at, "history_import", evidence_at=ev.at,
                               last_seen=ev.at, keep_names=not verify))
        if status != ACTIVE:
            obs.append(Observation(person, status, "member", status_at, "history_import",
                                   keep_names=not verify))
    obs += [Observation(Person(m["telegram_id"], first_name=m.get("first_name") or ""), ACTIVE, None,
                        status_at, "history_import", strictly_newer=True, create=False)
            for m, status_at in to_reactivate]
    if obs:
        store.observe_many(cid, obs)
    report.added, report.reactivated = len(to_add), len(to_reactivate)
    report.recorded_left = sum(1 for *_, status in to_add if status != ACTIVE)
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
    if gateway_factory is None or settings is None:
        raise ConfigError("import-history needs Telegram to verify candidates (or pass --no-verify)")
    with gateway_factory(settings) as gw:
        return import_history(store, gw, scan, chat_id, True, at, bot_id)


def _admins_of_a_new_club(gateway, chat_id: int, bot_id: Optional[int], at: datetime,
                          report: HistoryReport) -> List[Observation]:
    """Whatever creates a club imports its admins: asked before anything is written."""
    try:
        admins = gateway.get_admins(chat_id)
    except TelegramError as exc:
        report.notes.append(f"organizers not imported: {exc}")
        return []
    return [Observation(a.person, club_status(a.state), club_role(a.state), at, "admin_import")
            for a in admins if is_person(a.person, bot_id)]
