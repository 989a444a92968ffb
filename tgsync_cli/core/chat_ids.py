"""What a CHAT argument can be, decided in one place for the command line and the library alike.

A group is named by its numeric chat id (negative: -100… for a supergroup), by its public
@username, or, where the store is asked, by its club's `club_` id. Telegram ids are 64-bit
signed integers, so a longer or larger number is refused before anything is looked up; a
positive number is a person or a bot, never a group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from tgsync_cli.core.errors import InputError

NUMERIC = re.compile(r"^[+-]?[0-9]+$")
USERNAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}$")
CLUB_ID = re.compile(r"^club_[A-Za-z0-9_-]{1,64}$")
INT64_MIN = -(2 ** 63)


@dataclass(frozen=True)
class ChatArg:
    """A CHAT that has the shape of a group: exactly one of the three is set."""

    text: str                       # as given, without surrounding blanks
    chat_id: Optional[int] = None   # a numeric group id
    username: Optional[str] = None  # an @username, without the @
    club_id: Optional[str] = None   # a club's id in the store


def chat_id_problem(text: str) -> Optional[str]:
    """Why TEXT cannot be a group's chat id, or None when it can."""
    if not NUMERIC.match(text):
        return "expected a number"
    if len(text.lstrip("+-")) > 20:
        return "too many digits for a Telegram id"
    n = int(text)
    if n >= 0:
        return "a group's chat id is negative (-100… for a supergroup)"
    if n < INT64_MIN:
        return "out of range for a Telegram id"
    return None


def chat_problem(text: str, club_ids: bool = True) -> Optional[str]:
    """Why TEXT (already stripped) cannot name a group, as `TEXT: reason`; None when it can."""
    if NUMERIC.match(text):
        problem = chat_id_problem(text)
        return f"{cut(text)}: {problem}" if problem else None
    if USERNAME.match(text) or (club_ids and CLUB_ID.match(text)):
        return None
    expected = "a chat id (-100…), an @username" + (" or a club_ id" if club_ids else "")
    return f"{cut(text)!r}: expected {expected}"


def parse_chat(chat: Optional[str], club_ids: bool = True) -> ChatArg:
    """CHAT as a group's id, @username or (with `club_ids`) club id; else an InputError naming it."""
    text = (chat or "").strip()
    problem = chat_problem(text, club_ids)
    if problem:
        raise InputError(f"CHAT {problem}")
    if NUMERIC.match(text):
        return ChatArg(text, chat_id=int(text))
    if text.startswith("@"):
        return ChatArg(text, username=text[1:])
    return ChatArg(text, club_id=text)


def cut(text: str, limit: int = 40) -> str:
    """Quoted input in an error stays short: a pasted megabyte must not become the message."""
    return text if len(text) <= limit else text[:limit] + "…"
