"""What every backend shares: ids, URI redaction and the round-trip counter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, cast

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


class PartsStore(Counted):
    """What every backend answers by handing the call to one of its parts: `members` (member
    writes and reads) and `insights` (log and figures). The backend builds both."""

    members: MemberStore
    insights: InsightStore

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
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None) -> int:
        return self.members.flush_last_seen(seen, first_seen, active_since)

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
