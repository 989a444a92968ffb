"""Operator toolkit: reconcile, import-history, doctor, forget (SPEC §3, §4).

The commands in `commands/ops.py` parse and render; every decision lives here, against the same
protocols the engine uses (Store, TelegramGateway, MemberCache), so tests drive these functions
with the simulator's gateway or a stand-in and never connect to Telegram.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

from pymongo import UpdateOne

from tgsync_cli import app as core
from tgsync_cli.config import SECRETS, Settings, redact
from tgsync_cli.errors import (AdminRequired, BotNotInChat, ConfigError, InputError, PeerUnknown,
                               TelegramError, TelegramUnavailable, TgsyncError)
from tgsync_cli.events import MemberState, Person
from tgsync_cli.gateway import ChatMemberInfo
from tgsync_cli.pipeline import scrub_spool
from tgsync_cli.rules import club_status, iso, is_person
from tgsync_cli.store import Store, member_change, new_id

ACTIVE = "active"
PUSH_CHUNK = 1000  # members per atomic push: ~200 KB, far below MongoDB's 16 MB document limit
GatewayFactory = Callable[[Settings], ContextManager[Any]]


# -- the live gateway -----------------------------------------------------------------------------
@contextmanager
def gateway_for(settings: Settings) -> Iterator[Any]:
    """A started PyrogramGateway for one-shot commands, stopped on exit. It is the live commands'
    connection (credentials checked before connecting, updates off so `serve` keeps receiving
    them, Telegram's login refusals named by setting, never by value)."""
    from tgsync_cli.live import pyrogram_connection

    with pyrogram_connection(settings) as conn:
        yield conn.gateway


def resolve_chat_id(store: Store, chat: str) -> int:
    """CHAT as Telegram's id: numeric ids pass as given (the club may not exist yet)."""
    text = chat.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return core.find_club(store, text)["telegram_group_id"]


# -- reconcile --------------------------------------------------------------------------------------
@dataclass
class ClubReconcile:
    """One club's reconcile, with who changed (read from the store before and after)."""

    club_id: str
    chat_id: int
    name: str
    total_members_telegram: Optional[int] = None
    total_members_ayda: Optional[int] = None
    drift: Optional[int] = None
    listed: bool = False
    reason: str = ""
    bot_present: Optional[bool] = None
    bot_is_admin: Optional[bool] = None
    added: List[int] = field(default_factory=list)
    marked_left: List[int] = field(default_factory=list)
    reactivated: List[int] = field(default_factory=list)
    role_changed: List[int] = field(default_factory=list)
    would_add: int = 0
    would_mark_left: int = 0
    error: Optional[str] = None

    def as_json(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class ReconcileOutcome:
    clubs: List[ClubReconcile]
    threshold: int
    dry_run: bool
    at: datetime

    @property
    def over_threshold(self) -> List[ClubReconcile]:
        return [c for c in self.clubs if c.drift is not None and c.drift > self.threshold]

    @property
    def failed(self) -> List[ClubReconcile]:
        return [c for c in self.clubs if c.error is not None]

    @property
    def exit_code(self) -> int:
        """1 when a club could not be reconciled, else 3 when drift exceeds the threshold (cron)."""
        if self.failed:
            return 1
        return 3 if self.over_threshold else 0

    def as_json(self) -> Dict[str, Any]:
        return {"at": iso(self.at), "dry_run": self.dry_run, "threshold": self.threshold,
                "over_threshold": [c.chat_id for c in self.over_threshold],
                "clubs": [c.as_json() for c in self.clubs]}


def _member_states(doc: Optional[dict]) -> Dict[int, Tuple[str, str]]:
    return {m["telegram_id"]: (m.get("status"), m.get("role")) for m in (doc or {}).get("members", [])}


def reconcile_clubs(store: Store, gateway, chat: Optional[str], all_clubs: bool, at: datetime,
                    dry_run: bool = False, threshold: int = 0,
                    settings: Optional[Settings] = None) -> ReconcileOutcome:
    """SPEC §3 reconcile for one club or every club; a club Telegram cannot answer for is
    reported with its error and the others still run (a cron job should see them all)."""
    if (chat is None) == (not all_clubs):
        raise InputError("reconcile: give either CHAT or --all")
    if threshold < 0:
        raise InputError("--threshold must be 0 or more")
    docs = store.all_clubs() if all_clubs else [core.find_club(store, chat)]
    engine = core.make_engine(store, gateway, settings)
    out = ReconcileOutcome([], threshold, dry_run, at)
    for doc in docs:
        info = engine.club(doc["telegram_group_id"])
        row = ClubReconcile(doc["_id"], doc["telegram_group_id"], doc.get("name") or "")
        before = _member_states(doc)
        try:
            rep = engine.reconcile(info, at, dry_run=dry_run)
        except TgsyncError as exc:
            row.error = str(exc)
            row.reason = "not reconciled"
            out.clubs.append(row)
            if not all_clubs:
                raise
            continue
        row.total_members_telegram, row.total_members_ayda = rep.total_members_telegram, rep.total_members_ayda
        row.drift, row.listed, row.reason = rep.drift, rep.listed, rep.reason
        row.bot_present, row.bot_is_admin = rep.bot_present, rep.bot_is_admin
        if dry_run:
            row.would_add, row.would_mark_left = rep.added, rep.marked_left
        elif rep.listed:
            after = _member_states(store.club_by_id(info.club_id))
            for tid, (status, role) in after.items():
                old = before.get(tid)
                if old is None:
                    row.added.append(tid)
                    continue
                if old[0] == ACTIVE and status != ACTIVE:
                    row.marked_left.append(tid)
                elif old[0] != ACTIVE and status == ACTIVE:
                    row.reactivated.append(tid)
                if old[1] != role:
                    row.role_changed.append(tid)
        out.clubs.append(row)
    return out


# -- import-history -----------------------------------------------------------------------------
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
                        settings: Optional[Settings] = None) -> HistoryReport:
    """Scan the whole file first (a bad export is refused before Telegram or the store is
    touched), then verify and write."""
    from tgsync_cli.history import scan_export

    chat_id = resolve_chat_id(store, chat)
    scan = scan_export(path)
    bot_id = _bot_id(settings)
    if not verify:
        return import_history(store, None, scan, chat_id, False, at, bot_id)
    if gateway_factory is None:
        raise ConfigError("import-history needs Telegram to verify candidates (or pass --no-verify)")
    with gateway_factory(settings) as gw:
        return import_history(store, gw, scan, chat_id, True, at, bot_id)


def _bot_id(settings: Optional[Settings]) -> Optional[int]:
    """The bot's own id is its token's prefix: its messages in an export never make it a member."""
    token = settings.telegram.bot_token if settings is not None else None
    if token and token.split(":", 1)[0].isdigit():
        return int(token.split(":", 1)[0])
    return None


# -- doctor -------------------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    level: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_json(self) -> Dict[str, str]:
        return {"name": self.name, "level": self.level, "detail": redact(self.detail),
                "fix": redact(self.fix)}


TELEGRAM_KEYS = ("api_id", "api_hash", "bot_token")
EXPECTED_INDEXES = {"clubs": [("telegram_group_id",)], "users": [("telegram_id",)],
                    "departures": [("club_id", "telegram_id")]}
ROUTES_ALWAYS = (2, 5)


def doctor_checks(settings: Settings, gateway_factory: Optional[GatewayFactory] = None) -> List[Check]:
    """Every check runs even when an earlier one fails, so one run shows everything to fix.
    Details name settings and ids, never values of secrets."""
    checks: List[Check] = []
    checks.extend(_config_checks(settings))
    store, store_checks = _store_checks(settings)
    checks.extend(store_checks)
    try:
        creds_ok = _telegram_settings_ok(settings, checks)
        if creds_ok and gateway_factory is not None:
            checks.extend(_telegram_checks(settings, store, gateway_factory))
        elif not creds_ok:
            checks.append(Check("telegram login", "warn", "skipped: credentials are not set",
                                "set telegram.api_id, api_hash and bot_token, then run doctor again"))
    finally:
        if store is not None:
            store.close()
    return [Check(c.name, c.level, redact(c.detail), redact(c.fix)) for c in checks]


def _config_checks(settings: Settings) -> List[Check]:
    out = []
    if settings.source is None:
        out.append(Check("config file", "warn", "no tgsync.toml: defaults and TGSYNC_* environment in use",
                         "create tgsync.toml (chmod 600) or pass --config PATH"))
        return out
    path = Path(settings.source)
    out.append(Check("config file", "ok", f"{path}"))
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        out.append(Check("config permissions", "fail", f"{path}: cannot stat ({exc.strerror})",
                         f"check that {path} is readable"))
        return out
    text = ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    holds_secret = any(f"{key}" in text for _, key in SECRETS) or "@" in settings.store.uri
    if mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
        level = "fail" if holds_secret else "warn"
        what = "holds secrets and is" if holds_secret else "is"
        out.append(Check("config permissions", level,
                         f"{path} {what} accessible to other users (mode {stat.S_IMODE(mode):o})",
                         f"chmod 600 {path}"))
    else:
        out.append(Check("config permissions", "ok", f"owner only (mode {stat.S_IMODE(mode):o})"))
    return out


def _store_checks(settings: Settings) -> Tuple[Optional[Store], List[Check]]:
    from tgsync_cli.store import open_store, redact_uri

    uri = settings.store.uri
    label = redact_uri(uri)
    if uri.startswith("file:") and not os.path.isdir(uri[len("file:"):] or "."):
        return None, [Check("store", "warn", f"{label}: no store there yet",
                            "it is created on the first run; check store.uri if you expected data")]
    try:
        store = open_store(uri, settings.store.database)
        n = store.clubs.count_documents({})
    except TgsyncError as exc:
        return None, [Check("store", "fail", f"{label}: {exc}",
                            "check store.uri and that the database is running and reachable")]
    except Exception as exc:  # a unique index refused by duplicate data, an auth failure…
        return None, [Check("store", "fail", f"{label}: {type(exc).__name__}",
                            "check store.uri credentials; remove duplicate telegram ids if an index is refused")]
    out = [Check("store", "ok", f"{label} is reachable, {n} club(s)")]
    missing = []
    for coll, keys in EXPECTED_INDEXES.items():
        try:
            info = getattr(store, coll).index_information()
        except Exception as exc:
            missing.append(f"{coll} ({type(exc).__name__})")
            continue
        have = {tuple(k for k, _ in spec["key"]) for spec in info.values()}
        missing += [f"{coll}.{'+'.join(k)}" for k in keys if k not in have]
    if missing:
        out.append(Check("store indexes", "fail", "missing: " + ", ".join(missing),
                         "run any tgsync command with write access to create them"))
    else:
        out.append(Check("store indexes", "ok", "unique telegram_group_id, telegram_id, departures"))
    return store, out


def _telegram_settings_ok(settings: Settings, checks: List[Check]) -> bool:
    from tgsync_cli.telegram.client import check_credentials

    t = settings.telegram
    missing = [k for k in TELEGRAM_KEYS if getattr(t, k) in (None, "")]
    if missing:
        keys = ", ".join(f"telegram.{k}" for k in missing)
        checks.append(Check("telegram settings", "warn",
                            f"{keys} not set: serve, reconcile, doctor's login check and verified "
                            "import-history need them",
                            "set them in tgsync.toml [telegram] or TGSYNC_TELEGRAM_<KEY>"))
        return False
    try:
        check_credentials(t.api_id, t.api_hash, t.bot_token)
    except ConfigError as exc:
        checks.append(Check("telegram settings", "fail", str(exc), "copy the value again from "
                            "my.telegram.org (api_id, api_hash) or @BotFather (bot_token)"))
        return False
    checks.append(Check("telegram settings", "ok", "api_id, api_hash and bot_token are set"))
    return True


def _telegram_checks(settings: Settings, store: Optional[Store], factory: GatewayFactory) -> List[Check]:
    out: List[Check] = []
    try:
        with factory(settings) as gw:
            me = gw.me()
            out.append(Check("telegram login", "ok", f"logged in as @{me.username} (id {me.id})"))
            out.append(_privacy_check(me.privacy_mode))
            if store is not None:
                out.extend(_club_checks(store, gw, me))
    except TgsyncError as exc:
        out.append(Check("telegram login", "fail", str(exc),
                         "check the bot token with @BotFather and that this machine reaches Telegram"))
    return out


def _privacy_check(privacy: Optional[bool]) -> Check:
    if privacy is False:
        return Check("privacy mode", "ok", "off: every group message reaches the bot (route 4 live everywhere)")
    if privacy is True:
        return Check("privacy mode", "warn", "on: route 4 (message activity) only where the bot is admin",
                     "@BotFather → /setprivacy → Disable, then remove and re-add the bot to each group")
    return Check("privacy mode", "warn",
                 "cannot be read by a bot over MTProto: route 4 is certain only where the bot is admin",
                 "check in @BotFather → /mybots → Bot Settings → Group Privacy (turn off for route 4)")


def live_routes(in_group: bool, admin: bool, privacy: Optional[bool]) -> List[int]:
    """Which SPEC §1 routes work in a group for this bot (7 needs only a file, so it is left out)."""
    routes = list(ROUTES_ALWAYS)
    if in_group:
        routes.append(1)
    if admin:
        routes += [3, 6]
    if admin or privacy is False:
        routes.append(4)
    return sorted(routes)


def _club_checks(store: Store, gw, me) -> List[Check]:
    out = []
    for doc in store.all_clubs():
        chat_id, name = doc["telegram_group_id"], doc.get("name") or ""
        label = f"club {name} ({chat_id})"
        try:
            state = gw.get_member(chat_id, me.id).state
            in_group = club_status(state) == ACTIVE
        except BotNotInChat:
            in_group, state = False, None
        except TelegramError as exc:
            out.append(Check(label, "fail", f"cannot check the bot's rights: {exc}",
                             "run doctor again later; if it persists, re-add the bot"))
            continue
        admin = in_group and state.status in ("creator", "administrator")
        routes = ", ".join(str(r) for r in live_routes(in_group, admin, me.privacy_mode))
        stored = (doc.get("sync") or {}).get("bot_is_admin")
        stale = "" if bool(stored) == admin else "; the store's sync.bot_is_admin is out of date"
        if not in_group:
            out.append(Check(label, "fail", f"the bot is not in the group; live routes: {routes}{stale}",
                             "add the bot back to the group as an admin"))
        elif not admin:
            out.append(Check(label, "warn", f"bot is a member, not admin; live routes: {routes}{stale}",
                             "promote the bot to admin for routes 3 and 6 (and 4 with privacy on)"))
        else:
            out.append(Check(label, "ok" if not stale else "warn",
                             f"bot is admin; live routes: {routes}{stale}",
                             "run `tgsync reconcile --all` to refresh sync.*" if stale else ""))
    return out


# -- forget ---------------------------------------------------------------------------------------------
@dataclass
class ForgetReport:
    telegram_id: int
    clubs: List[Dict[str, Any]] = field(default_factory=list)  # {club_id, name, telegram_group_id}
    accounts: int = 0
    departures: int = 0
    created_by_cleared: int = 0
    cache_entries: int = 0
    spooled_events: int = 0

    @property
    def found(self) -> bool:
        return bool(self.clubs or self.accounts or self.departures or self.created_by_cleared)

    def as_json(self) -> Dict[str, Any]:
        d = asdict(self)
        d["found"] = self.found
        return d


def forget_preview(store: Store, telegram_id: int) -> ForgetReport:
    """What `forget` would remove, read-only (shown before the confirmation)."""
    rep = ForgetReport(telegram_id)
    rep.clubs = [{"club_id": d["_id"], "name": d.get("name"), "telegram_group_id": d["telegram_group_id"]}
                 for d in store.clubs.find({"members.telegram_id": telegram_id},
                                           {"name": 1, "telegram_group_id": 1})]
    user = store.user_by_telegram_id(telegram_id)
    rep.accounts = 1 if user else 0
    rep.departures = store.departures.count_documents({"telegram_id": telegram_id})
    if user:
        rep.created_by_cleared = store.clubs.count_documents({"created_by": user["_id"]})
    return rep


def forget(store: Store, cache, telegram_id: int, spool: Optional[Path] = None) -> ForgetReport:
    """Erase one person: memberships, account, departure records, cache entries, and the club's
    `created_by` link to their account (it would otherwise point at a person who is gone)."""
    if telegram_id <= 0:
        raise InputError(f"TELEGRAM_ID must be a positive user id (got {telegram_id})")
    rep = forget_preview(store, telegram_id)
    user = store.user_by_telegram_id(telegram_id)
    if user is not None:
        store.clubs.update_many({"created_by": user["_id"]}, {"$set": {"created_by": None}})
    removed = store.forget(telegram_id)
    rep.accounts, rep.departures = removed["accounts"], removed["departures"]
    if cache is not None:
        for c in rep.clubs:
            if cache.is_active(c["club_id"], telegram_id):
                rep.cache_entries += 1
            cache.evict(c["club_id"], telegram_id)
    if spool is not None:  # events serve spooled at shutdown would bring them back
        rep.spooled_events = scrub_spool(spool, telegram_id)
    return rep
