"""Events ↔ plain JSON-able dicts: for the spool file, the Celery queue and logs.

Telegram time travels with the event, so at-least-once delivery and reordering converge.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Dict, Tuple

from tgsync_cli.core import events as ev
from tgsync_cli.core.errors import InputError

_TYPES = {cls.__name__: cls for cls in (
    ev.BotStatusChanged, ev.MemberStatusChanged, ev.MessageSeen, ev.DeepLinkStart,
    ev.ChatMigrated, ev.RosterObserved, ev.BotStatusRecheck, ev.JoinRequested, ev.RequestsDue)}
_NESTED = {"chat": ev.ChatRef, "actor": ev.Person, "old": ev.MemberState, "new": ev.MemberState,
           "bot": ev.Person, "user": ev.Person, "sender": ev.Person, "person": ev.Person,
           "state": ev.MemberState}


# Why not dataclasses.asdict-like walking each time: every event serve accepts is written to its
# journal, and walking the fields of the event, its chat and its sender cost ~10 us a message, more
# than the rest of a known member's message. Field names are read once a class; the frozen parts
# an event is made of (a chat, a person, a member state) are converted once and copied after (a
# group's messages share their chat and, a member's, their sender).
_FIELDS: Dict[type, Tuple[str, ...]] = {}
_PARTS = (ev.ChatRef, ev.Person, ev.MemberState)
_MEMO: Dict[Any, Dict[str, Any]] = {}  # a frozen part -> its plain form (bounded: starts over)
_MEMO_LIMIT = 20_000
_SCALARS = (str, int, float, bool)


def _names(cls: type) -> Tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_dict(event: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": type(event).__name__}
    for name in _names(type(event)):
        out[name] = _plain(getattr(event, name))
    return out


def _plain(v: Any) -> Any:
    if v is None or type(v) in _SCALARS:
        return v
    if isinstance(v, datetime):
        return v.isoformat()
    if type(v) in _PARTS:
        d = _MEMO.get(v)
        if d is None:
            d = {n: _plain(getattr(v, n)) for n in _names(type(v))}
            if len(_MEMO) >= _MEMO_LIMIT:
                _MEMO.clear()
            _MEMO[v] = d
        return dict(d)  # a copy: a caller may change what it gets (forget erases a person)
    if dataclasses.is_dataclass(v):
        return {n: _plain(getattr(v, n)) for n in _names(type(v))}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def from_dict(d: Dict[str, Any]) -> Any:
    try:
        cls = _TYPES[d["type"]]
        kwargs = {k: _build(k, v) for k, v in d.items() if k != "type"}
        return cls(**kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"not a tgsync event ({type(exc).__name__}: {exc})") from exc


def _build(key: str, v: Any) -> Any:
    if v is None:
        return None
    if key == "at":
        return datetime.fromisoformat(v)
    if key == "entries":
        return tuple(ev.RosterEntry(ev.Person(**e["person"]), ev.MemberState(**e["state"])) for e in v)
    if key in _NESTED:
        return _NESTED[key](**v)
    return v
