"""doctor: config, store, login, privacy and per-club rights, each with a one-line fix; no secret shown."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tgsync_cli.core.errors import (
    BotNotInChat,
    ConfigError,
    TelegramError,
    TgsyncError,
)
from tgsync_cli.core.join_policy import policy_of
from tgsync_cli.core.rules import club_status
from tgsync_cli.ops.common import ACTIVE, GatewayFactory
from tgsync_cli.core.store import Store
from tgsync_cli.runtime.config import Settings, permission_verdict, redact


def _bot_id(settings: Optional[Settings]) -> Optional[int]:
    """The bot's own id is its token's prefix: its messages in an export never make it a member."""
    token = settings.telegram.bot_token if settings is not None else None
    if token and token.split(":", 1)[0].isdigit():
        return int(token.split(":", 1)[0])
    return None


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
    verdict = permission_verdict(path)  # the same verdict every command warns with
    if verdict:
        out.append(Check("config permissions", verdict[0], verdict[1], f"chmod 600 {path}"))
    else:
        out.append(Check("config permissions", "ok", f"no other user can change it or read a secret "
                         f"in it (mode {stat.S_IMODE(mode):o})"))
    return out


def _store_checks(settings: Settings) -> Tuple[Optional[Store], List[Check]]:
    from tgsync_cli import stores

    uri = settings.store.uri
    label = stores.redact_uri(uri)
    path = uri[len("file:"):] or "."
    if uri.startswith("file:") and not os.path.exists(path):
        return None, [Check("store", "warn", f"{label}: no store there yet",
                            "it is created on the first run; check store.uri if you expected data")]
    try:
        store = stores.open_store(uri, settings.store.database, create=False,
                                  time_format=settings.store.time_format)
        n = store.counts()["clubs"]
        problems = store.check()
    except TgsyncError as exc:
        return None, [Check("store", "fail", f"{label}: {exc}",
                            "check store.uri and that the database is running and reachable")]
    except Exception as exc:  # a unique index refused by duplicate data, an auth failure…
        return None, [Check("store", "fail", f"{label}: {type(exc).__name__}",
                            "check store.uri credentials; remove duplicate telegram ids if an index is refused")]
    out = [Check("store", "ok", f"{label} is reachable, {n} club(s)")]
    from tgsync_cli.stores.mongo import MongoStore

    if isinstance(store, MongoStore):  # a MongoDB the app may share: its shape, read only
        from tgsync_cli.ops.doctor_mongo import shape_checks

        try:
            out.extend(shape_checks(store, Check))
        except TgsyncError as exc:
            out.append(Check("database shape", "fail", str(exc), "check that the database is reachable"))
        return store, out
    if problems:
        out.append(Check("store indexes", "fail", "; ".join(problems),
                         "run any tgsync command with write access to create them"))
    else:
        out.append(Check("store indexes", "ok", "unique telegram_group_id, telegram_id, departures"))
    return store, out


def _telegram_settings_ok(settings: Settings, checks: List[Check]) -> bool:
    from tgsync_cli.runtime.telegram_client import check_credentials

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
        return Check("privacy mode", "ok",
                     "off: every group message reaches the bot (message activity works everywhere)")
    if privacy is True:
        return Check("privacy mode", "warn", "on: message activity is seen only where the bot is admin",
                     "@BotFather → /setprivacy → Disable, then remove and re-add the bot to each group")
    return Check("privacy mode", "warn",
                 "cannot be read by a bot over MTProto: message activity is certain only where the bot is admin",
                 "check in @BotFather → /mybots → Bot Settings → Group Privacy (turn it off to see every message)")


ROUTE_NAMES = {1: "admin import", 2: "registration button", 3: "join/leave events", 4: "message activity",
               5: "service messages", 6: "roster import"}


def routes_in_words(routes: List[int]) -> str:
    """What works, in words an operator knows (the numbers are the routes', for the curious)."""
    return ", ".join(f"{ROUTE_NAMES[r]} ({r})" for r in routes)


def live_routes(in_group: bool, admin: bool, privacy: Optional[bool]) -> List[int]:
    """Which routes into the roster work in a group for this bot (7 needs only a file, so it is left out)."""
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
        can_invite = None
        try:
            bot = gw.get_member(chat_id, me.id)
            state, can_invite = bot.state, bot.can_invite_users
            in_group = club_status(state) == ACTIVE
        except BotNotInChat:
            in_group, state = False, None
        except TelegramError as exc:
            out.append(Check(label, "fail", f"cannot check the bot's rights: {exc}",
                             "run doctor again later; if it persists, re-add the bot"))
            continue
        admin = in_group and state.status in ("creator", "administrator")
        routes = routes_in_words(live_routes(in_group, admin, me.privacy_mode))
        stored = (doc.get("sync") or {}).get("bot_is_admin")
        stale = "" if bool(stored) == admin else "; the store's sync.bot_is_admin is out of date"
        if not in_group:
            out.append(Check(label, "fail", f"the bot is not in the group; works here: {routes}{stale}",
                             "add the bot back to the group as an admin"))
        elif not admin:
            out.append(Check(label, "warn", f"bot is a member, not admin; works here: {routes}{stale}",
                             "promote the bot to admin for join/leave events and roster import"
                             " (and message activity with privacy on)"))
        elif can_invite is False:
            policy = policy_of(doc)
            out.append(Check(label, "warn",
                             f"bot is admin without the right to add members (can_invite_users): join "
                             f"requests cannot be answered (join policy {policy}); works here: {routes}{stale}",
                             "give the bot the admin right \"Invite users via link\" (add members)"))
        else:
            out.append(Check(label, "ok" if not stale else "warn",
                             f"bot is admin; join policy {policy_of(doc)}; works here: {routes}{stale}",
                             "run `tgsync reconcile --all` to refresh sync.*" if stale else ""))
    return out


