"""Telegram Bot API `Update` JSON → domain events.

Used by `replay` (JSON Lines of Updates) and by the simulator, which speaks to the engine the
way Telegram speaks to a bot. A malformed update raises InputError naming the field.
"""

from __future__ import annotations

import json
from typing import Any, List

from tgsync_cli.core.errors import InputError
from tgsync_cli.core.events import (
    BotStatusChanged,
    ChatMigrated,
    ChatRef,
    JoinRequested,
    MemberState,
    MemberStatusChanged,
    MessageSeen,
    Person,
)
from tgsync_cli.core.rules import TELEGRAM_STATUSES, from_unix, outside_groups, removal_status

_STATUS_ALIASES = {"owner": "creator", "banned": "kicked"}
# service messages that say nothing about membership (what pyrogram marks `service` too):
# they are not anyone's writing either
_OTHER_SERVICE = ("new_chat_title", "new_chat_photo", "delete_chat_photo", "group_chat_created",
                  "supergroup_chat_created", "channel_chat_created", "pinned_message",
                  "message_auto_delete_timer_changed", "video_chat_scheduled", "video_chat_started",
                  "video_chat_ended", "video_chat_participants_invited", "forum_topic_created",
                  "forum_topic_edited", "forum_topic_closed", "forum_topic_reopened",
                  "general_forum_topic_hidden", "general_forum_topic_unhidden", "chat_shared",
                  "users_shared", "boost_added", "chat_background_set", "proximity_alert_triggered")

# ids and times need 20 digits; a number this long is refused before it is converted (bounded
# time), anything between is converted and then refused by the field's range check, by name
MAX_DIGITS = 100
INT_LIMIT = 2 ** 63  # what every store can hold
MAX_SHOWN = 60  # a quoted value in an error is cut to this


def bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number of {len(text.lstrip('-'))} digits")
    return int(text)


def parse_json_line(raw: bytes | str) -> Any:
    """One line of JSON, bounded: invalid UTF-8, nesting too deep for the parser and numbers
    of more than MAX_DIGITS digits are all a one-line InputError("not valid JSON (...)"), in bounded time."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid JSON (not UTF-8 text: byte {exc.start + 1})") from None
    try:
        return json.loads(text, parse_int=bounded_int)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise InputError("not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # the digit bound above, or a float Python refuses
        raise InputError(f"not valid JSON ({str(exc)[:MAX_SHOWN]})") from None


def shown(value: Any) -> str:
    """A value quoted in an error, bounded (a hostile file must not make a huge error line)."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


def _get(obj: Any, key: str, path: str, kind, required: bool = True):
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected an object")
    if key not in obj or obj[key] is None:
        if required:
            raise InputError(f"{path}.{key}: missing")
        return None
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if bool in kinds or not isinstance(value, bool):
        if isinstance(value, kinds):
            if isinstance(value, int) and not isinstance(value, bool) and not -INT_LIMIT < value < INT_LIMIT:
                raise InputError(f"{path}.{key}: number out of range")
            return value
    raise InputError(f"{path}.{key}: expected {' or '.join(k.__name__ for k in kinds)}, "
                     f"got {type(value).__name__}")


def person(obj: Any, path: str) -> Person:
    return Person(id=_get(obj, "id", path, int), is_bot=bool(_get(obj, "is_bot", path, bool, False)),
                  first_name=_get(obj, "first_name", path, str, False) or "",
                  last_name=_get(obj, "last_name", path, str, False),
                  username=_get(obj, "username", path, str, False),
                  language_code=_get(obj, "language_code", path, str, False))


def chat(obj: Any, path: str) -> ChatRef:
    return ChatRef(id=_get(obj, "id", path, int), type=_get(obj, "type", path, str, False) or "supergroup",
                   title=_get(obj, "title", path, str, False),
                   username=_get(obj, "username", path, str, False))


def member_state(obj: Any, path: str) -> MemberState:
    status = _get(obj, "status", path, str)
    status = _STATUS_ALIASES.get(status, status)
    if status not in TELEGRAM_STATUSES:
        raise InputError(f"{path}.status: unknown status {shown(status)}")
    is_member = _get(obj, "is_member", path, bool, False)
    return MemberState(status, True if is_member is None else is_member)


def _date(obj: Any, path: str):
    value = _get(obj, "date", path, int)
    if value < 0:
        raise InputError(f"{path}.date: negative time")
    if value > 253402300799:  # 9999-12-31: beyond, no datetime can hold it
        raise InputError(f"{path}.date: out of range")
    return from_unix(value)


def parse_update(update: Any, path: str = "update") -> List[object]:
    """The events one Update carries (possibly none: channel posts, callback queries...)."""
    if not isinstance(update, dict):
        raise InputError(f"{path}: expected an object")
    _get(update, "update_id", path, int, required=False)
    for key in ("message", "edited_message"):
        if key in update:
            return parse_message(update[key], f"{path}.{key}", edited=key == "edited_message")
    for key in ("my_chat_member", "chat_member"):
        if key in update:
            return [parse_chat_member(update[key], f"{path}.{key}", mine=key == "my_chat_member")]
    if "chat_join_request" in update:
        return parse_join_request(update["chat_join_request"], f"{path}.chat_join_request")
    known = ("channel_post", "edited_channel_post", "callback_query", "inline_query",
             "message_reaction", "poll", "poll_answer")
    if any(k in update for k in known):
        return []
    raise InputError(f"{path}: no update field this bot handles")


def parse_chat_member(obj: Any, path: str, mine: bool) -> object:
    c = chat(_get(obj, "chat", path, dict), f"{path}.chat")
    actor = person(_get(obj, "from", path, dict), f"{path}.from")
    at = _date(obj, path)
    old_obj = _get(obj, "old_chat_member", path, dict)
    new_obj = _get(obj, "new_chat_member", path, dict)
    old = member_state(old_obj, f"{path}.old_chat_member")
    new = member_state(new_obj, f"{path}.new_chat_member")
    user = person(_get(new_obj, "user", f"{path}.new_chat_member", dict), f"{path}.new_chat_member.user")
    if mine:
        # in a private chat it is the user blocking/unblocking us: nothing to learn about the bot
        # (MTProto's UpdateBotStopped does not describe it either)
        can_invite = None
        if new.status == "creator":
            can_invite = True
        elif new.status == "administrator":
            can_invite = bool(_get(new_obj, "can_invite_users", f"{path}.new_chat_member", bool, False))
        return BotStatusChanged(chat=c, actor=actor, old=old, new=new, at=at,
                                bot=None if c.type == "private" else user,
                                can_invite_users=None if c.type == "private" else can_invite)
    name, invited_by = _invite_link(obj, path)
    # an approved join request: without a link Telegram says via_join_request; through a link
    # that needs approval, the link says creates_join_request
    link = _get(obj, "invite_link", path, dict, False)
    via_request = bool(_get(obj, "via_join_request", path, bool, False)) or bool(
        link is not None and _get(link, "creates_join_request", f"{path}.invite_link", bool, False))
    return MemberStatusChanged(chat=c, user=user, new=new, at=at, actor=actor, old=old,
                               invite_link=name, invited_by=invited_by, via_join_request=via_request)


def _invite_link(obj: Any, path: str) -> tuple:
    """(the link's name or URL, its creator's id) of an update's `invite_link`, or (None, None)."""
    link = _get(obj, "invite_link", path, dict, False)
    if link is None:
        return None, None
    lp = f"{path}.invite_link"
    name = _get(link, "name", lp, str, False) or _get(link, "invite_link", lp, str, False)
    creator = _get(link, "creator", lp, dict, False)
    return name, (person(creator, f"{lp}.creator").id if creator is not None else None)


MAX_BIO = 140  # Telegram's own limit on a bio; a longer one is cut, never trusted


def parse_join_request(obj: Any, path: str) -> List[object]:
    """A chat_join_request. `user_chat_id` arrived in Bot API 6.5; an older update lacks it,
    and then (only then) the requester's id stands in for it."""
    c = chat(_get(obj, "chat", path, dict), f"{path}.chat")
    user = person(_get(obj, "from", path, dict), f"{path}.from")
    at = _date(obj, path)
    user_chat_id = _get(obj, "user_chat_id", path, int, False)
    bio = _get(obj, "bio", path, str, False)
    name, _ = _invite_link(obj, path)
    return [JoinRequested(chat=c, user=user, at=at,
                          user_chat_id=user.id if user_chat_id is None else user_chat_id,
                          invite_link=name, bio=bio[:MAX_BIO] if bio else None)]


def parse_message(msg: Any, path: str, edited: bool = False) -> List[object]:
    c = chat(_get(msg, "chat", path, dict), f"{path}.chat")
    at = _date(msg, path)
    if edited and msg.get("edit_date") is not None:
        at = from_unix(_get(msg, "edit_date", path, int))
    sender = None
    if msg.get("from") is not None:
        sender = person(_get(msg, "from", path, dict), f"{path}.from")
    sender_chat = msg.get("sender_chat")
    sender_chat_id = None
    if sender_chat is not None:
        sender_chat_id = _get(sender_chat, "id", f"{path}.sender_chat", int)
        # sent on behalf of a chat: `from` is a stand-in (1087968824, 777000, 136817688), as
        # MTProto, which names no user at all; no person is behind it
        sender = None
    text = _get(msg, "text", path, str, False)
    direct = outside_groups(c.type, sender, text, at)
    if direct is not None:
        return list(direct)
    events: List[object] = []
    if "migrate_to_chat_id" in msg:
        events.append(ChatMigrated(c.id, _get(msg, "migrate_to_chat_id", path, int), at, c.title))
    if "migrate_from_chat_id" in msg:
        events.append(ChatMigrated(_get(msg, "migrate_from_chat_id", path, int), c.id, at, c.title))
    joined = _get(msg, "new_chat_members", path, list, False)
    if joined is not None:
        for i, u in enumerate(joined):
            p = person(u, f"{path}.new_chat_members[{i}]")
            if not p.is_bot:  # bots (this one included) get their own my_chat_member
                events.append(MemberStatusChanged(chat=c, user=p, new=MemberState("member"), at=at,
                                                  actor=sender, via="service_message"))
    left = _get(msg, "left_chat_member", path, dict, False)
    if left is not None:
        user = person(left, f"{path}.left_chat_member")
        status = removal_status(user.id, sender.id if sender else None)
        if not user.is_bot:
            events.append(MemberStatusChanged(chat=c, user=user, new=MemberState(status), at=at,
                                              actor=sender, via="service_message"))
    if events or joined is not None or left is not None or any(k in msg for k in _OTHER_SERVICE):
        return events
    return [MessageSeen(chat=c, sender=sender, at=at, sender_chat_id=sender_chat_id,
                        is_automatic_forward=bool(msg.get("is_automatic_forward")), text=text)]
