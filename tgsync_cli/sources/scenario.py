"""Scenario files (`simulate`): checked whole before anything runs; the first fault names its JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from tgsync_cli.core.errors import InputError
from tgsync_cli.core.join_policy import POLICIES
from tgsync_cli.core.requests import ACTIONS as REQUEST_ACTIONS
from tgsync_cli.core.rules import TELEGRAM_STATUSES, parse_iso
from tgsync_cli.sources.botapi import bounded_int

CHAT_TYPES = ("group", "supergroup", "channel")  # a channel is never a club, but a bot may be added
ACTIONS: Dict[str, tuple] = {
    # action: (required fields, optional fields)
    "add_bot": (("chat", "as"), ("by", "can_invite_users")),
    "promote_bot": (("chat",), ("by", "can_invite_users")),
    "demote_bot": (("chat",), ("by",)),
    "remove_bot": (("chat",), ("by",)),
    "join": (("chat", "user"), ("by", "link", "link_by")),
    "leave": (("chat", "user"), ("by",)),
    "kick": (("chat", "user"), ("by",)),
    "unban": (("chat", "user"), ("by",)),
    "promote": (("chat", "user"), ("by",)),
    "demote": (("chat", "user"), ("by",)),
    "message": (("chat", "user"), ("text", "by", "reply_to_bot")),
    "anonymous_message": (("chat",), ("text", "by")),
    "start": (("user",), ("payload", "by")),
    "migrate": (("chat", "to"), ("by",)),
    "post_invite": (("chat",), ("by",)),
    "import_admins": (("chat",), ("by",)),
    "import_members": (("chat",), ("by",)),
    "reconcile": (("chat",), ("by", "yes")),
    "block_bot": (("user",), ("by",)),  # the user blocks the bot (a private my_chat_member)
    "unblock_bot": (("user",), ("by",)),
    "policy": (("chat", "join"), ("by", "decline_after")),  # an organizer sets the join policy
    "request_join": (("chat", "user"), ("by", "link")),  # through a join-request link
    "approve_request": (("chat", "user"), ("by",)),  # an admin answers a join request
    "decline_request": (("chat", "user"), ("by",)),
    "app": (("action", "chat", "user"), ("by", "force", "yes")),  # the app writes a request
    "restart_bot": ((), ("by",)),
    "bot_offline": ((), ("by",)),
    "bot_online": ((), ("by",)),
}


def load_scenario(path: str | Path) -> Dict[str, Any]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{p}:{line}: not valid JSON (not UTF-8 text)") from None
    try:
        data = json.loads(text, parse_int=bounded_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}:{exc.lineno}: not valid JSON (column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise InputError(f"{p}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # a number too long to convert
        raise InputError(f"{p}: not valid JSON ({str(exc)[:60]})") from None
    try:
        validate(data)
    except InputError as exc:
        raise InputError(f"{p}: {exc.message}") from exc
    return data


def _fail(path: str, what: str):
    raise InputError(f"{path}: {what}")


def _int(v: Any, path: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        _fail(path, f"expected an integer, got {json.dumps(v)[:40]}")
    return v


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str):
        _fail(path, f"expected a string, got {json.dumps(v)[:40]}")
    return v


def _obj(v: Any, path: str) -> dict:
    if not isinstance(v, dict):
        _fail(path, "expected an object")
    return v


def _list(v: Any, path: str) -> list:
    if not isinstance(v, list):
        _fail(path, "expected an array")
    return v


def validate(data: Any) -> None:
    """Raise InputError('$.timeline[3].chat: unknown chat -1600') for the first fault."""
    _obj(data, "$")
    bot = _obj(data.get("bot"), "$.bot")
    bot_id = _int(bot.get("id"), "$.bot.id")
    _str(bot.get("username"), "$.bot.username")
    if "privacy_mode" in bot and not isinstance(bot["privacy_mode"], bool):
        _fail("$.bot.privacy_mode", "expected true or false")
    users: Dict[int, dict] = {}
    for i, u in enumerate(_list(data.get("users", []), "$.users")):
        p = f"$.users[{i}]"
        _obj(u, p)
        uid = _int(u.get("id"), f"{p}.id")
        if uid <= 0:
            _fail(f"{p}.id", "user ids are positive")
        if uid in users:
            _fail(f"{p}.id", f"duplicate user id {uid}")
        _str(u.get("first_name"), f"{p}.first_name")
        for opt in ("username", "last_name", "language_code"):
            if u.get(opt) is not None:
                _str(u[opt], f"{p}.{opt}")
        if "is_bot" in u and not isinstance(u["is_bot"], bool):
            _fail(f"{p}.is_bot", "expected true or false")
        users[uid] = u
    chats: Dict[int, dict] = {}
    for i, c in enumerate(_list(data.get("chats", []), "$.chats")):
        p = f"$.chats[{i}]"
        _obj(c, p)
        cid = _int(c.get("id"), f"{p}.id")
        if cid >= 0:
            _fail(f"{p}.id", "group ids are negative")
        if cid in chats:
            _fail(f"{p}.id", f"duplicate chat id {cid}")
        if c.get("type") not in CHAT_TYPES:
            _fail(f"{p}.type", f"expected one of {', '.join(CHAT_TYPES)}")
        _str(c.get("title"), f"{p}.title")
        if c.get("username") is not None:
            _str(c["username"], f"{p}.username")
        seen = set()
        for j, m in enumerate(_list(c.get("members", []), f"{p}.members")):
            mp = f"{p}.members[{j}]"
            _obj(m, mp)
            uid = _int(m.get("user"), f"{mp}.user")
            if uid not in users and uid != bot_id:  # the bot may already be in a group
                _fail(f"{mp}.user", f"unknown user {uid}")
            if uid in seen:
                _fail(f"{mp}.user", f"user {uid} listed twice")
            seen.add(uid)
            if m.get("status") not in TELEGRAM_STATUSES:
                _fail(f"{mp}.status", f"expected one of {', '.join(TELEGRAM_STATUSES)}")
            if "is_member" in m and not isinstance(m["is_member"], bool):
                _fail(f"{mp}.is_member", "expected true or false")
        chats[cid] = c
    _validate_timeline(_list(data.get("timeline", []), "$.timeline"), users, chats, bot_id)


def _validate_timeline(timeline: List[Any], users: dict, chats: dict, bot_id: int) -> None:
    last = None
    known_chats = set(chats)
    for i, step in enumerate(timeline):
        p = f"$.timeline[{i}]"
        _obj(step, p)
        try:
            at = parse_iso(_str(step.get("at"), f"{p}.at"))
        except ValueError:
            _fail(f"{p}.at", f"not an ISO-8601 time: {step.get('at')!r}")
        if last is not None and at < last:
            _fail(f"{p}.at", "times must not decrease")
        last = at
        action = step.get("do")
        if not isinstance(action, str) or action not in ACTIONS:  # a list or object is unhashable
            _fail(f"{p}.do", f"unknown action {json.dumps(action)[:40]}")
        required, optional = ACTIONS[action]
        for key in required:
            if step.get(key) is None:  # null is as missing as absent
                _fail(f"{p}.{key}", f"missing (required by {action})")
        # Other keys (a "note", a comment) are the author's and are ignored, not refused.
        if "chat" in step:
            cid = _int(step["chat"], f"{p}.chat")
            if cid not in known_chats:
                _fail(f"{p}.chat", f"unknown chat {cid}")
        for key in ("user", "by", "link_by"):
            if key == "by" and action == "app" and isinstance(step.get("by"), str):
                continue  # the app names its own user (an account id), not a Telegram one
            if key in step and step[key] is not None:
                uid = _int(step[key], f"{p}.{key}")
                if uid not in users:
                    _fail(f"{p}.{key}", f"unknown user {uid}")
        if action == "add_bot" and step["as"] not in ("member", "administrator"):
            _fail(f"{p}.as", "expected member or administrator")
        if action == "migrate":
            to = _int(step["to"], f"{p}.to")
            if chats.get(step["chat"], {}).get("type") != "group" and step["chat"] in chats:
                _fail(f"{p}.chat", "only a basic group (type group) can migrate")
            if to in known_chats or to >= 0:
                _fail(f"{p}.to", f"{to} must be a new negative supergroup id")
            known_chats.add(to)
        for key in ("text", "payload", "link"):
            if key in step and step[key] is not None:
                _str(step[key], f"{p}.{key}")
        if action == "policy":
            if step["join"] not in POLICIES:
                _fail(f"{p}.join", f"expected one of {', '.join(POLICIES)}")
            if step.get("decline_after") is not None and _int(step["decline_after"], f"{p}.decline_after") <= 0:
                _fail(f"{p}.decline_after", "expected a positive number of days")
        if action == "app" and step["action"] not in REQUEST_ACTIONS:
            _fail(f"{p}.action", f"expected one of {', '.join(REQUEST_ACTIONS)}")
        for key in ("yes", "reply_to_bot", "force", "can_invite_users"):
            if key in step and not isinstance(step[key], bool):
                _fail(f"{p}.{key}", "expected true or false")
