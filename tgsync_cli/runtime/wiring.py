"""Wiring: settings → store, cache, engine; the lookups every command shares."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple

from tgsync_cli.core.documents import ClubDoc
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.chat_ids import parse_chat
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.core.rules import iso
from tgsync_cli.runtime.config import Settings
from tgsync_cli.core.store import Store
from tgsync_cli.stores import open_store


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def store_from(settings: Settings, create: bool = True) -> Store:
    """create=False for commands that only read: a missing store is an error, never made."""
    return open_store(settings.store.uri, settings.store.database, create=create,
                      time_format=settings.store.time_format)


def make_cache(settings: Optional[Settings] = None):
    """The member cache the settings ask for (Redis when cache.backend = "redis")."""
    ttl = settings.cache.ttl_seconds if settings is not None else 3600.0
    if settings is not None and settings.cache.backend == "redis":
        from tgsync_cli.runtime.redis_cache import (
            RedisMemberCache,  # scale-out mode only
        )

        return RedisMemberCache.from_url(settings.cache.redis_url, ttl_seconds=ttl)
    return MemoryMemberCache(ttl_seconds=ttl)


def make_engine(store: Store, gateway, settings: Optional[Settings] = None, cache=None,
                **kwargs) -> Engine:
    engine = Engine(store, gateway, cache if cache is not None else make_cache(settings),
                    welcome_dm=bool(settings.bot.welcome_dm) if settings is not None else False,
                    bot_username=(settings.telegram.bot_username if settings is not None else None),
                    **kwargs)
    engine.start()
    return engine


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def club_view(doc: ClubDoc, full: bool = False) -> Dict[str, Any]:
    keys: Tuple[str, ...] = ("telegram_id", "role", "status", "source")
    if full:
        keys += ("username", "first_name", "joined_at", "last_seen", "status_at")
    return {"club_id": doc["_id"], "telegram_group_id": doc.get("telegram_group_id"),
            "name": doc.get("name"), "sync": _plain(doc.get("sync") or {}),
            "members": [_member_view(m, keys) for m in doc.get("members", [])]}


def _member_view(m: Mapping[str, Any], keys) -> Dict[str, Any]:
    """A member; one the app added itself (no Telegram id) is marked, with the app's user_id so
    a person can find them (tgsync never changes them)."""
    out = {k: _plain(m.get(k)) for k in keys}
    if m.get("telegram_id") is None:
        out["app_only"], out["user_id"] = True, m.get("user_id")
    return out


def find_club(store: Store, chat: str) -> ClubDoc:
    """CHAT is a numeric chat id, an @username, or a club _id."""
    arg = parse_chat(chat)
    if arg.chat_id is not None:
        doc = store.club_by_group(arg.chat_id)
    elif arg.username is not None:
        doc = store.club_by_username(arg.username)
    else:
        doc = store.club_by_id(arg.text)
    if doc is None:
        raise TgsyncError(f"no club for {arg.text} in {store.uri_label}")
    return doc


