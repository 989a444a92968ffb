"""The store protocol: what the engine needs from a backend, in the core's own terms.

Backends live in `tgsync_cli.stores` (SQLite for `file:`/`memory:`, MongoDB). The engine hands
them *observations* — "Telegram says this person had this status at this time, by this route" —
and every backend applies them with the same rule, `core.evidence.decide()`, inside one transaction (or
one guarded document update), so any number of processes, and any order or repetition of the same
events, end in the same member document. Reads give back the documents MongoDB holds.

One protocol call is one round trip (`ops`): that is what `simulate --json`'s `db_ops` counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

from tgsync_cli.core.documents import (
    ClubDoc,
    ClubIndexEntry,
    DepartureDoc,
    Documents,
    ForgetReport,
    LogEntry,
    MemberDoc,
    MembershipOf,
    ReconcileRecord,
    UserDoc,
)
from tgsync_cli.core.events import Person
from tgsync_cli.core.evidence import (  # noqa: F401 (the protocol's terms, re-exported)
    ACTIVE,
    GUARD_KEYS,
    MEMBER_KEYS,
    OPTIONAL_MEMBER_KEYS,
    ROUTES,
    Observation,
    Outcome,
)


def account_fields(p: Person, at: datetime) -> Dict[str, Any]:
    return {"telegram_id": p.id, "username": p.username, "first_name": p.first_name,
            "last_name": p.last_name, "language_code": p.language_code, "updated_at": at}


@dataclass
class ClubIndex:
    """What start-up and re-warm need: each club's map entry and active member ids. `changed`
    holds only clubs whose version differs from the caller's `known` versions."""

    clubs: List[ClubIndexEntry] = field(default_factory=list)
    removed: List[str] = field(default_factory=list)  # club ids the caller knew that are gone


class MemberStore(Protocol):
    """Member writes and reads: a part of every backend (`members`), and of the whole store."""

    def member(self, club_id: str, tid: int) -> Optional[MemberDoc]: ...
    def observe(self, club_id: str, obs: Observation) -> Outcome: ...
    def observe_many(self, club_id: str, observations: Sequence[Observation],
                     complete_at: Optional[datetime] = None, complete_source: str = "member_import"
                     ) -> List[Outcome]: ...
    def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime],
                        first_seen: Optional[Dict[Tuple[str, int], datetime]] = None,
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None,
                        message_times: Optional[Dict[Tuple[str, int], List[datetime]]] = None) -> int: ...
    def active_count(self, club_id: str) -> int: ...  # active members with a Telegram id
    # active members the app added itself (no Telegram id, only in a shared MongoDB): counted in
    # sync.total_members_ayda as the app sees the club, never in drift, never marked left
    def app_only_active(self, club_id: str) -> int: ...


class InsightStore(Protocol):
    """What `history`, `member` and `stats` read (what the log, the flush and reconcile leave
    behind): a part of every backend (`insights`), and of the whole store."""

    def writers_by_week(self, club_id: str) -> Dict[str, int]: ...
    def record_reconcile(self, club_id: str, at: datetime, telegram: Optional[int], active: int,
                         drift: Optional[int]) -> None: ...
    def reconcile_history(self, club_id: str) -> List[ReconcileRecord]: ...
    def memberships_of(self, tid: int) -> List[MembershipOf]: ...
    def membership_log(self, club_id: Optional[str] = None, telegram_id: Optional[int] = None,
                       since: Optional[datetime] = None) -> List[LogEntry]: ...


class Store(MemberStore, InsightStore, Protocol):
    """Everything the engine and the commands ask of a backend (the member and insight calls
    are declared by the two protocols above)."""

    ops: int          # round trips so far (simulate's and the bench's db_ops)
    uri_label: str    # the URI with any secret redacted, for messages

    def close(self) -> None: ...

    # clubs
    def club_by_group(self, chat_id: int) -> Optional[ClubDoc]: ...
    def club_by_id(self, club_id: str) -> Optional[ClubDoc]: ...
    def club_by_username(self, username: str) -> Optional[ClubDoc]: ...
    def all_clubs(self) -> List[ClubDoc]: ...
    def club_index(self, known: Optional[Dict[str, int]] = None) -> ClubIndex: ...
    def create_club(self, chat_id: int, name: str, created_by: Optional[str], sync: Dict[str, Any],
                    username: Optional[str] = None) -> Tuple[ClubDoc, bool]: ...
    def update_sync(self, club_id: str, fields: Dict[str, Any],
                    guard_at: Optional[datetime] = None) -> bool: ...
    # the welcome claim carries a token, so a retry whose first claim's reply was lost recognises
    # its own claim; it is released unless the post is confirmed
    def claim_welcome(self, club_id: str, token: Optional[str] = None) -> bool: ...
    def release_welcome(self, club_id: str, token: Optional[str] = None) -> None: ...
    def confirm_welcome(self, club_id: str, token: str) -> None: ...
    def migrate_club(self, club_id: str, old_id: int, new_id: int) -> None: ...
    def set_club_username(self, club_id: str, username: Optional[str]) -> None: ...

    # accounts
    def upsert_user(self, p: Person, at: datetime) -> str: ...
    def user_by_telegram_id(self, tid: int) -> Optional[UserDoc]: ...
    def set_dm_blocked(self, tid: int, blocked: bool, at: datetime) -> bool: ...

    # members, besides MemberStore's: a write a backend finished later than the change (MongoDB's
    # membership_log outbox) is done now.
    # The flush does it too; no round trip when there is nothing to finish
    def settle(self) -> None: ...

    # departures (leaves of people with no membership), log, erasure
    def departures_for(self, club_id: str, tids: Iterable[int]) -> Dict[int, DepartureDoc]: ...
    def prune_departures(self, now: datetime) -> int: ...
    def forget_preview(self, tid: int) -> ForgetReport: ...
    def forget(self, tid: int) -> ForgetReport: ...

    # whole-store views (store copy, doctor, snapshots)
    def counts(self) -> Dict[str, int]: ...
    def export(self) -> Documents: ...
    def import_documents(self, docs: Documents) -> Dict[str, int]: ...
    def check(self) -> List[str]: ...

    # `forget` tells running `serve`s through the store. note_forgotten records an
    # erasure at `at` WITHOUT the id: a random salt and forgotten_key(salt, id); notes older than
    # an hour are pruned. forgotten_since(at): [(salt, key, at)] noted strictly after `at` (all
    # kept for None), oldest first. One round trip each.
    def note_forgotten(self, tid: int, at: datetime) -> None: ...
    def forgotten_since(self, at: Optional[datetime]) -> List[Tuple[str, str, datetime]]: ...

    # the requests ledger (core.requests): what the app asks, the join requests answered. Every
    # read gives documents through read_request; a claim moves pending (or a stale applying) to
    # applying in one guarded write, so one serve only takes it; finish with a token only
    # while that claim holds. One round trip each.
    def add_request(self, doc: Dict[str, Any]) -> Dict[str, Any]: ...
    def requests_of(self, club_id: Optional[str] = None, states: Optional[Sequence[str]] = None,
                    telegram_id: Optional[int] = None, since: Optional[datetime] = None,
                    limit: int = 1000) -> List[Dict[str, Any]]: ...
    def claim_request(self, req_id: Any, token: str, now: datetime,
                      stale_before: datetime) -> Optional[Dict[str, Any]]: ...
    def finish_request(self, req_id: Any, token: Optional[str], fields: Dict[str, Any]) -> bool: ...
    def open_join_request(self, doc: Dict[str, Any]) -> Dict[str, Any]: ...
    def close_join_requests(self, club_id: str, telegram_id: int, fields: Dict[str, Any]) -> int: ...


def forgotten_key(salt: str, telegram_id: int) -> str:
    """How a forget note names the person without holding the id. A hash of a
    10-digit id can be brute-forced: the note is short-lived, not anonymous."""
    return hashlib.sha256(f"{salt}:{telegram_id}".encode()).hexdigest()
