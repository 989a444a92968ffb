"""The membership mappings as pure functions: Telegram status → club status and role, who is a person."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import List, Optional

from tgsync_cli.core.events import DeepLinkStart, MemberState, Person

# Telegram's stand-in senders (anonymous admins, channel posts): never members, never accounts.
ANONYMOUS_ADMIN_ID = 1087968824  # @GroupAnonymousBot
SERVICE_NOTIFICATIONS_ID = 777000  # "Telegram": channel posts copied into a discussion group; is_bot false!
CHANNEL_BOT_ID = 136817688  # @Channel_Bot
STAND_IN_IDS = frozenset({ANONYMOUS_ADMIN_ID, SERVICE_NOTIFICATIONS_ID, CHANNEL_BOT_ID})

# ASCII digits only and no trailing newline: `\d` and `$` alone would let "join_-١٠٠١" and
# "join_1\n" through. Checked with fullmatch.
DEEP_LINK_RE = re.compile(r"join_(-?[0-9]{1,20})", re.ASCII)
_INT64 = 2**63 - 1

TELEGRAM_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")


def club_status(state: MemberState) -> str:
    s = state.status
    if s in ("creator", "administrator", "member"):
        return "active"
    if s == "restricted":
        return "active" if state.is_member else "left"
    if s in ("kicked", "banned"):
        return "kicked"
    return "left"


def club_role(state: MemberState) -> str:
    return "organizer" if state.status in ("creator", "administrator") else "member"


def is_person(p: Optional[Person], bot_id: Optional[int] = None) -> bool:
    """A real human who may hold a membership: not a bot, not a stand-in, not us."""
    if p is None or p.is_bot or p.id in STAND_IN_IDS or p.id <= 0:
        return False
    return bot_id is None or p.id != bot_id


def parse_join_payload(payload: Optional[str]) -> Optional[int]:
    """The chat id a `join_<chat_id>` payload names, or None if it is malformed."""
    if payload is None:
        return None
    m = DEEP_LINK_RE.fullmatch(payload)
    if not m:
        return None
    chat_id = int(m.group(1))
    # 20 digits can exceed what any chat id (or MongoDB's 8-byte integer) can hold: no such club.
    return chat_id if abs(chat_id) <= _INT64 else None


_START_RE = re.compile(r"/start(?:@\w+)?(?:\s+(.*))?", re.IGNORECASE | re.DOTALL)
_NO_PAYLOAD = object()


def start_payload(text: Optional[str]):
    """A private `/start` → its payload (None for a bare /start); anything else → NOT_START.

    Both adapters use this so Bot API and MTProto agree: the command is matched case-insensitively
    (clients send `/START` as typed), and whatever follows it is the payload, spaces included —
    a payload that is not a clean `join_<id>` then gets the engine's "not a valid link" reply.
    """
    m = _START_RE.fullmatch((text or "").strip())
    if m is None:
        return NOT_START
    rest = (m.group(1) or "").strip()
    return rest or None


NOT_START = _NO_PAYLOAD


def outside_groups(chat_type: str, sender: Optional[Person], text: Optional[str],
                   at: datetime) -> Optional[List[DeepLinkStart]]:
    """What a message outside any group means, the same for both adapters: in a private chat
    only `/start` counts (a deep link); a channel is never a club and its posts are no one's
    activity. None for a message in a group."""
    if chat_type == "private":
        payload = start_payload(text)
        if sender is None or payload is NOT_START:
            return []
        return [DeepLinkStart(user=sender, payload=payload, at=at)]
    if chat_type == "channel":
        return []
    return None


def removal_status(user_id: int, actor_id: Optional[int]) -> str:
    """A "X left the group" service message: `left` only when X is its sender (a leave is always
    X's own act); otherwise someone removed X — a person, or an anonymous admin, whom MTProto
    shows as no sender at all (pyrogram: the chat itself), the Bot API as the group — `kicked`."""
    return "left" if actor_id == user_id else "kicked"


def deep_link(bot_username: str, chat_id: int) -> str:
    return f"https://t.me/{bot_username}?start=join_{chat_id}"


def from_unix(ts: int | float) -> datetime:
    """Telegram time (unix seconds) → naive UTC datetime, the form the store keeps."""
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).replace(tzinfo=None)


def parse_iso(text: str) -> datetime:
    """ISO-8601 with Z or offset → naive UTC datetime (second precision)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.replace(microsecond=0)


def iso(dt: Optional[datetime]) -> Optional[str]:
    return None if dt is None else dt.replace(microsecond=0).isoformat() + "Z"
