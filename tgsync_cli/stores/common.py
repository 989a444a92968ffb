"""What every backend shares: ids, URI redaction and the round-trip counter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, cast

if TYPE_CHECKING:  # types only: the core's store module is imported lazily below
    from tgsync_cli.core.documents import LogEntry, MemberDoc, MembershipOf, ReconcileRecord
    from tgsync_cli.core.evidence import Observation, Outcome
    from tgsync_cli.core.store import InsightStore, MemberStore

from tgsync_cli.stores.uri_redaction import redact_uri  # noqa: F401 (re-exported)

DEFAULT_DB = "ayda_run"
TOMBSTONE_DAYS = 7
FORGOTTEN_KEEP_SECONDS = 3600  # a forget note lives an hour: serves poll it every few seconds


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Counted:
    """`ops` counts protocol calls that reach the database (one call, one round trip, as
    `simulate --json`'s db_ops reports)."""

    ops = 0
    uri_label = "store"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass


class RequestLedger(Protocol):
    """The requests part of a backend: join requests and the app's removals, each claimed once."""

    def add_request(self, doc: Dict[str, Any]) -> Dict[str, Any]: ...
    def requests_of(self, club_id: Optional[str] = None, states: Optional[Sequence[str]] = None,
                    telegram_id: Optional[int] = None, since: Optional[datetime] = None,
                    limit: int = 1000) -> List[Dict[str, Any]]: ...
    def claim_request(self, req_id: Any, token: str, now: datetime,
                      stale_before: datetime) -> Optional[Dict[str, Any]]: ...
    def finish_request(self, req_id: Any, token: Optional[str], fields: Dict[str, Any]) -> bool: ...
    def open_join_request(self, doc: Dict[str, Any]) -> Dict[str, Any]: ...
    def close_join_requests(self, club_id: str, telegram_id: int, fields: Dict[str, Any]) -> int: ...


class PartsStore(Counted):
    """What every backend answers by handing the call to one of its parts: `members` (member
    writes and reads), `insights` (log and figures) and `requests` (the requests ledger). The
    backend builds all three."""

    members: MemberStore
    insights: InsightStore
    requests: RequestLedger

    def add_request(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        return self.requests.add_request(doc)

    def requests_of(self, club_id: Optional[str] = None, states: Optional[Sequence[str]] = None,
                    telegram_id: Optional[int] = None, since: Optional[datetime] = None,
                    limit: int = 1000) -> List[Dict[str, Any]]:
        return self.requests.requests_of(club_id, states, telegram_id, since, limit)

    def claim_request(self, req_id: Any, token: str, now: datetime,
                      stale_before: datetime) -> Optional[Dict[str, Any]]:
        return self.requests.claim_request(req_id, token, now, stale_before)

    def finish_request(self, req_id: Any, token: Optional[str], fields: Dict[str, Any]) -> bool:
        return self.requests.finish_request(req_id, token, fields)

    def open_join_request(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        return self.requests.open_join_request(doc)

    def close_join_requests(self, club_id: str, telegram_id: int, fields: Dict[str, Any]) -> int:
        return self.requests.close_join_requests(club_id, telegram_id, fields)

    def member(self, club_id: str, tid: int) -> Optional[MemberDoc]:
        return self.members.member(club_id, tid)

    def observe(self, club_id: str, obs: Observation) -> Outcome:
        return self.members.observe(club_id, obs)

    def observe_many(self, club_id: str, observations: Sequence[Observation],
                     complete_at: Optional[datetime] = None, complete_source: str = "member_import"
                     ) -> List[Outcome]:
        return self.members.observe_many(club_id, observations, complete_at, complete_source)

    def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime],
                        first_seen: Optional[Dict[Tuple[str, int], datetime]] = None,
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None,
                        message_times: Optional[Dict[Tuple[str, int], List[datetime]]] = None) -> int:
        return self.members.flush_last_seen(seen, first_seen, active_since, message_times)

    def active_count(self, club_id: str) -> int:
        return self.members.active_count(club_id)

    def app_only_active(self, club_id: str) -> int:
        return self.members.app_only_active(club_id)

    def membership_log(self, club_id: Optional[str] = None, telegram_id: Optional[int] = None,
                       since: Optional[datetime] = None) -> List[LogEntry]:
        return self.insights.membership_log(club_id, telegram_id, since)

    def writers_by_week(self, club_id: str) -> Dict[str, int]:
        return self.insights.writers_by_week(club_id)

    def record_reconcile(self, club_id: str, at: datetime, telegram: Optional[int], active: int,
                         drift: Optional[int]) -> None:
        self.insights.record_reconcile(club_id, at, telegram, active, drift)

    def reconcile_history(self, club_id: str) -> List[ReconcileRecord]:
        return self.insights.reconcile_history(club_id)

    def memberships_of(self, tid: int) -> List[MembershipOf]:
        return self.insights.memberships_of(tid)


def member_doc(m: Mapping[str, Any]) -> MemberDoc:
    """A membership as every read shows it: the seed's keys, the invite keys only when known."""
    from tgsync_cli.core.store import GUARD_KEYS, MEMBER_KEYS, OPTIONAL_MEMBER_KEYS

    out = {k: m.get(k) for k in MEMBER_KEYS}
    for k in GUARD_KEYS:
        if k in m:
            out[k] = m[k]
    for k in OPTIONAL_MEMBER_KEYS:
        if m.get(k) is not None:
            out[k] = m[k]
    return cast("MemberDoc", out)


# What each store call does, in an operator's words: "listing the clubs failed" says what was
# being done; "all_clubs failed" names a method they never called.
_DOING = {
    "active_count": "counting a club's active members", "all_clubs": "listing the clubs",
    "app_only_active": "counting the app's own active members",
    "check": "checking the database's indexes", "claim_welcome": "claiming a welcome post",
    "clear_departure": "clearing a departure note", "club_by_group": "looking up the club of a chat",
    "club_by_id": "looking up a club by id", "club_by_username": "looking up a club by @username",
    "club_index": "loading the clubs", "confirm_welcome": "confirming a welcome post",
    "counts": "counting what is stored", "create_club": "creating a club",
    "departure": "reading a departure note", "departures_for": "reading departure notes",
    "export": "reading everything for a copy", "flush_activity": "saving who wrote this week",
    "flush_last_seen": "saving when members were last seen", "forget": "erasing a person",
    "forget_preview": "finding what is stored about a person",
    "forgotten_since": "reading who was erased", "import": "writing a copy",
    "member": "reading a membership", "membership_log": "reading the membership log",
    "memberships_of": "reading a person's memberships", "migrate_club": "moving a club to its new chat",
    "note_forgotten": "noting an erased person", "observe": "saving a membership change",
    "observe_many": "saving membership changes", "pending_log": "reading log entries not yet moved",
    "prune_departures": "pruning old departure notes", "reconcile_history": "reading reconcile history",
    "record_departure": "recording a departure", "record_reconcile": "recording a reconcile",
    "release_welcome": "releasing a welcome post", "set_club_username": "saving a club's @username",
    "set_dm_blocked": "noting a blocked private chat", "settle_log": "moving log entries to the log",
    "update_sync": "saving a club's sync figures", "upsert_user": "saving an account",
    "user_by_telegram_id": "looking up an account", "writers_by_week": "counting writers per week",
}


def doing(name: str) -> str:
    """A store call's name as the words of what it does."""
    return _DOING.get(name, name.replace("_", " "))
