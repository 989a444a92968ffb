"""Read a Telegram Desktop chat export (`result.json`) into each user's last evidence (route 7).

Why streaming: exports of busy groups reach hundreds of MB, so the file is read as a stream of
JSON events (ijson, its C backend `yajl2_c` when built) and only one message plus one Evidence
per user is ever held. Why `basic_parse` with our own depth tracking instead of ijson's dotted
prefixes: prefixes are rebuilt for every event (slower, quadratic on deeply nested input, and
ijson's C `parse` even crashes on some hostile numbers), and keys containing dots would alias
paths. Top-level scalars (`name`, `type`, `id`) are picked up wherever they sit in the object.

Leaving, heuristically: Desktop writes a member who left as `remove_members` whose `actor` is
that member and whose `members` holds display names, never ids. We call it a self-removal only
when `members == [actor's display name]`; an admin who happens to share the removed person's
display name is misread as leaving (rare; `--chat` verification with Telegram catches it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

import ijson

from tgsync_cli.core.errors import InputError
from tgsync_cli.core.rules import STAND_IN_IDS, from_unix

try:
    BACKEND = ijson.get_backend("yajl2_c")
except ImportError:  # no compiler/wheel: ijson's best other backend, same events, slower
    BACKEND = ijson
CHUNK = 1 << 18
MAX_DEPTH = 64  # real exports nest ~6 deep; the limit stops hostile files early
SUPERGROUP_TYPES = frozenset({"private_supergroup", "public_supergroup", "private_channel", "public_channel"})
BASIC_GROUP_TYPES = frozenset({"private_group"})

_SCALAR = frozenset(("string", "number", "boolean", "null"))
_STARTS = frozenset(("start_map", "start_array"))
_ENDS = frozenset(("end_map", "end_array"))
_HEAD = {"name": "string", "type": "string", "id": "whole number"}
_NESTED = object()  # stands for a field whose value is an object or an array
_PEER = re.compile(r"(user|channel|chat)([0-9]{1,20})")
_UNIX = re.compile(r"[0-9]{1,12}")
MAX_DIGITS = 20
_LONG_NUMBER = re.compile(rb"[0-9]{%d,}" % (MAX_DIGITS + 1))
_DIGITS_AS_ZERO = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))  # digit → "0", else "x"
_RUN = b"0" * (MAX_DIGITS + 1)
# What a parser raises on malformed bytes (yajl2_c also decimal.InvalidOperation for exponents
# too large for Decimal; the pure-Python backend RecursionError); all mean "not valid JSON".
_BAD_JSON = (ijson.JSONError, ValueError, ArithmeticError, SystemError, RecursionError)


@dataclass(frozen=True)
class Evidence:
    """The latest sign of one user in the export: a message or a service action of theirs."""

    telegram_id: int
    display_name: Optional[str]
    present: bool  # False only for a self-removal (left)
    at: datetime  # naive UTC, from `date_unixtime`
    message_index: int  # 0-based position in `messages`


@dataclass
class ExportScan:
    chat_name: Optional[str] = None
    chat_type: Optional[str] = None
    bare_id: Optional[int] = None
    messages_read: int = 0
    candidates: dict[int, Evidence] = field(default_factory=dict)

    def bot_api_id(self) -> Optional[int]:
        """Bot API chat id for the export's bare id; None when there is no id or no group type."""
        if self.bare_id is None:
            return None
        if self.chat_type in SUPERGROUP_TYPES:
            return -(10**12 + self.bare_id)
        if self.chat_type in BASIC_GROUP_TYPES:
            return -self.bare_id
        return None


class _Reporting:
    """The export file as the parser reads it, telling `progress(bytes_read, size)` as it goes."""

    def __init__(self, f, size: int, progress) -> None:
        self._f, self._size, self._progress = f, size, progress

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._progress(self._f.tell(), self._size)
        return data


def scan_export(path: str | os.PathLike, progress=None) -> ExportScan:
    """Stream `path` once; raise InputError (naming the file, message and field) if it is broken.
    `progress(bytes_read, size)` is called as the file is read (a progress bar for big exports)."""
    label = os.fspath(path)
    scan = ExportScan()
    limit = sys.get_int_max_str_digits()
    # yajl2_c crashes (SIGSEGV) when int() refuses a >4300-digit number, so lift the limit while
    # parsing (process-wide, restored after); a number of millions of digits is slow, not fatal.
    sys.set_int_max_str_digits(0)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise InputError(f"{label}: file is empty, not a Telegram Desktop chat export")
            source = f if progress is None else _Reporting(f, size, progress)
            events = BACKEND.basic_parse(_DigitGuard(source, label), buf_size=CHUNK)
            try:
                _walk(events, scan, label)
            except _BAD_JSON:  # N is a 0-based byte offset (editors and `head -c` agree)
                raise InputError(f"{label}: not valid JSON near byte {_error_offset(path)}") from None
            finally:
                _close(events)
    except OSError as e:
        raise InputError(f"{label}: cannot read the file ({e.strerror or e})") from None
    finally:
        sys.set_int_max_str_digits(limit)
    return scan


def _walk(events, scan: ExportScan, label: str) -> None:
    """Track depth by hand; only the top object, `messages` and each message's own fields matter."""
    depth, in_msgs, seen = 0, False, set()
    key: Optional[str] = None
    msg: dict = {}
    fld = members = None
    idx = -1
    for ev, val in events:
        if depth == 3 and in_msgs:  # a message's own fields: the hot path
            if ev == "map_key":
                fld = val
            elif ev in _SCALAR:
                msg[fld] = val
            elif ev == "end_map":
                depth = 2
                _take(scan, msg, idx, label)
            else:
                depth = 4
                if fld == "members" and ev == "start_array":
                    members = msg["members"] = []
                else:
                    msg[fld] = _NESTED
            continue
        if depth == 4 and members is not None:  # display names inside `members`
            if ev == "end_array":
                depth, members = 3, None
                continue
            members.append(val if ev in _SCALAR else _NESTED)
        if ev in _STARTS:
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(f"{label}: nested deeper than {MAX_DEPTH} levels")
            if depth == 1 and ev != "start_map":
                raise InputError(f"{label}: not a Telegram Desktop chat export (top level is not an object)")
            if depth == 2 and key == "messages":
                if ev != "start_array":
                    raise InputError(f'{label}: not a Telegram Desktop chat export ("messages" is not an array)')
                in_msgs = True
            elif depth == 2 and key is not None and key in _HEAD:
                raise InputError(f'{label}: field "{key}" is not a {_HEAD[key]}: an object or array')
            elif depth == 3 and in_msgs:
                idx, scan.messages_read = scan.messages_read, scan.messages_read + 1
                if ev != "start_map":
                    raise InputError(f"{label}: message #{idx} is not an object")
                msg, fld = {}, None
        elif ev in _ENDS:
            depth -= 1
            in_msgs = in_msgs and depth > 1
        elif depth == 0:
            raise InputError(f"{label}: not a Telegram Desktop chat export (top level is not an object)")
        elif depth == 1:
            if ev == "map_key":
                key = val
                seen.add(val)
            elif key in _HEAD:
                _head(scan, key, val, label)
            elif key == "messages":
                raise InputError(f'{label}: not a Telegram Desktop chat export ("messages" is not an array)')
        elif depth == 2 and in_msgs:
            raise InputError(f"{label}: message #{scan.messages_read} is not an object")
    if "messages" not in seen:
        what = ("a whole-account export; export the one chat instead" if "chats" in seen
                else 'no "messages" array')
        raise InputError(f"{label}: not a Telegram Desktop chat export ({what})")


def _head(scan: ExportScan, key: str, val, label: str) -> None:
    if val is None:
        return
    if not isinstance(val, str if key != "id" else int) or isinstance(val, bool):
        raise InputError(f'{label}: field "{key}" is not a {_HEAD[key]}: {_show(val)}')
    if isinstance(val, int) and not 0 < val < 10**12:  # so that -(10^12 + id) stays unambiguous
        raise InputError(f'{label}: field "id" is not a Telegram chat id: {_show(val)}')
    setattr(scan, {"name": "chat_name", "type": "chat_type", "id": "bare_id"}[key], val)


def _take(scan: ExportScan, msg: dict, idx: int, label: str) -> None:
    """Turn one message into evidence for its sender (message) or actor (service message)."""
    kind = msg.get("type")
    if kind == "message":
        id_field, name_field = "from_id", "from"
    elif kind == "service":
        id_field, name_field = "actor_id", "actor"
    else:
        return
    ref = msg.get(id_field)
    if ref is None:
        return
    mid = msg.get("id")
    where = f"{label}: message #{idx}" + (f" (id {mid})" if type(mid) is int else "")
    m = _PEER.fullmatch(ref) if isinstance(ref, str) else None
    if m is None:
        raise InputError(f'{where}: field "{id_field}" is not user<N>, channel<N> or chat<N>: {_show(ref)}')
    uid = int(m[2])
    if m[1] != "user" or uid in STAND_IN_IDS or uid <= 0:
        return  # channels, groups posting as themselves, Telegram's stand-ins: nobody's membership
    at = _when(msg, where)
    name = msg.get(name_field)
    name = name if isinstance(name, str) and name else None
    left = kind == "service" and msg.get("action") == "remove_members" and _only_self(msg, name, where)
    old = scan.candidates.get(uid)
    if old is None or at >= old.at:  # last evidence wins; a tie goes to the later message
        keep = name or (old.display_name if old else None)
        scan.candidates[uid] = Evidence(uid, keep, not left, at, idx)


def _only_self(msg: dict, actor_name: Optional[str], where: str) -> bool:
    members = msg.get("members")
    if members is None:
        return False
    if not isinstance(members, list) or not all(n is None or isinstance(n, str) for n in members):
        raise InputError(f'{where}: field "members" is not a list of names')
    return actor_name is not None and members == [actor_name]


def _when(msg: dict, where: str) -> datetime:
    if "date_unixtime" not in msg:
        raise InputError(f'{where}: field "date_unixtime" is missing '
                         "(older Telegram Desktop versions omit it: export again with a current one)")
    raw = msg["date_unixtime"]
    if isinstance(raw, str) and _UNIX.fullmatch(raw):
        raw = int(raw)
    if type(raw) is not int:
        raise InputError(f'{where}: field "date_unixtime" is not a number: {_show(raw)}')
    try:
        return from_unix(raw)
    except (OverflowError, OSError, ValueError):
        raise InputError(f'{where}: field "date_unixtime" is out of range: {_show(raw)}') from None


class _DigitGuard:
    """The file as the parser reads it, refusing a number of more than MAX_DIGITS digits before
    the parser converts it (a million-digit number took 17 s to convert). Digits inside strings
    are text and allowed: whether a run sits in a string is known from the parity of unescaped
    quotes before it, counted with bytes.count (C speed); only a chunk holding a long digit run
    at all is looked at closer (a regex), so an ordinary export costs a translate and a find
    per chunk."""

    def __init__(self, f, label: str):
        self._f, self._label = f, label
        self._offset = 0  # file offset of the start of the next chunk
        self._in_string = False
        self._carry = b""  # trailing digits and backslashes of the last chunk (no quotes)

    def read(self, n: int = -1) -> bytes:
        chunk = self._f.read(n)
        if chunk:
            self._check(chunk)
        return chunk

    def _check(self, chunk: bytes) -> None:
        buf = self._carry + chunk
        base = self._offset - len(self._carry)
        start_state = self._in_string
        pos = 0 if _RUN in buf.translate(_DIGITS_AS_ZERO) else len(buf)  # C speed, no regex
        while (m := _LONG_NUMBER.search(buf, pos)) is not None:
            if start_state ^ (_quotes(buf[:m.start()]) % 2 == 1):
                pos = m.end()  # inside a string: text, not a number
                continue
            raise InputError(f"{self._label}: a number of more than {MAX_DIGITS} digits near byte "
                             f"{base + m.start()}: not a Telegram Desktop chat export")
        self._in_string = start_state ^ (_quotes(buf) % 2 == 1)
        kept = len(buf.rstrip(b"0123456789\\"))
        self._carry = buf[kept:][-64:]
        backslashes = len(buf) - len(buf.rstrip(b"\\"))
        if backslashes > 64:  # only the parity of a long run matters
            self._carry = b"\\" * (64 - (backslashes % 2))
        self._offset += len(chunk)


def _quotes(data: bytes) -> int:
    """Unescaped quote characters: a quote after an odd run of backslashes is escaped."""
    total, k, sign, escaped = data.count(b'"'), 1, 1, 0
    while True:
        c = data.count(b"\\" * k + b'"')
        if not c:
            return total - escaped
        escaped += sign * c
        sign, k = -sign, k + 1


def _show(v) -> str:
    if v is _NESTED:
        return "an object or array"
    text = json.dumps(v, default=str)  # ASCII-only: safe to print whatever the file held
    return text if len(text) <= 40 else text[:37] + "..."


class _Discard:
    def send(self, _event) -> None:
        pass


def _error_offset(path) -> int:
    """Byte where the parser gave up: replay to the failing chunk, then feed it byte by byte."""
    with open(path, "rb") as f:
        coro, pos = BACKEND.basic_parse_coro(_Discard()), 0
        while chunk := f.read(CHUNK):
            try:
                coro.send(chunk)
            except _BAD_JSON:
                break
            pos += len(chunk)
        else:
            _close(coro)
            return pos  # the file ended too early
        _close(coro)
        f.seek(0)
        coro = BACKEND.basic_parse_coro(_Discard())
        try:
            while f.tell() < pos:
                coro.send(f.read(min(CHUNK, pos - f.tell())))
            for k, byte in enumerate(f.read(CHUNK)):
                try:
                    coro.send(bytes((byte,)))
                except _BAD_JSON:
                    return pos + k
            return pos
        finally:
            _close(coro)


def _close(parser) -> None:
    """Close a parser we abandon, now and quietly: the pure-Python backend otherwise prints
    "Exception ignored ..." tracebacks to stderr when the garbage collector closes it later."""
    try:
        getattr(parser, "close", lambda: None)()
    except Exception:
        pass
