"""Events ↔ plain JSON-able dicts: for the spool file, the Celery queue and logs.

Telegram time travels with the event, so at-least-once delivery and reordering converge.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Dict

from tgsync_cli.core import events as ev
from tgsync_cli.core.errors import InputError

_TYPES = {cls.__name__: cls for cls in (
    ev.BotStatusChanged, ev.MemberStatusChanged, ev.MessageSeen, ev.DeepLinkStart,
    ev.ChatMigrated, ev.RosterObserved, ev.BotStatusRecheck, ev.JoinRequested, ev.RequestsDue)}
_NESTED = {"chat": ev.ChatRef, "actor": ev.Person, "old": ev.MemberState, "new": ev.MemberState,
           "bot": ev.Person, "user": ev.Person, "sender": ev.Person, "person": ev.Person,
           "state": ev.MemberState}


def to_dict(event: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        out[f.name] = _plain(getattr(event, f.name))
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if dataclasses.is_dataclass(v):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
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
