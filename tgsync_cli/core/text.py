"""Untrusted text made safe to show: names, titles and invite links come from Telegram users,
and whatever they typed must reach a terminal, a log or a table as text, never as control."""

from __future__ import annotations

import re
from typing import Any

CELL_LIMIT = 300  # characters of one untrusted text shown; the rest is cut with "…"

# C0 (tab and newline included: one value is one line), DEL, C1, and the bidirectional
# controls that make a terminal reorder what follows (U+202E shows "gpj.exe" as "exe.jpg")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: "re.Match[str]") -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: Any, limit: int = CELL_LIMIT) -> str:
    """VALUE as a bounded string with every control character spelt out (`\\x1b`, `\\u202e`)."""
    s = "" if value is None else str(value)
    s = s if len(s) <= limit else s[:limit] + "…"
    return _UNSAFE.sub(_visible, s)
