"""The store protocol: what the engine needs from a backend, in the core's own terms.

Backends live in `tgsync_cli.stores` (SQLite for `file:`/`memory:`, MongoDB). The engine hands
them *observations* — "Telegram says this person had this status at this time, by this route" —
and every backend applies them with the same rule, `decide()` below, inside one transaction (or
one guarded document update), so any number of processes, and any order or repetition of the same
events, end in the same member document (SPEC §2). Reads give back the SPEC §2 documents.

One protocol call is one round trip (`ops`): that is what `simulate --json`'s `db_ops` counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple

from tgsync_cli.core.events import Person

ACTIVE = "active"
# SPEC §2: the earliest evidence decides `source`; equal times go to the earlier route here.
ROUTES = ("admin_import", "manual_registration", "chat_member_event", "message_activity",
          "service_message", "member_import", "history_import")
RANK = {r: i for i, r in enumerate(ROUTES)}
MEMBER_KEYS = ("user_id", "telegram_id", "username", "first_name", "role", "status", "joined_at",
               "last_seen", "source", "status_at", "role_at")
# Added fields (SPEC §2 allows): hard_at, the newest member event's time (the status guard's
# memory; always present, so a seed document without it can be told apart) and proof_at, the
# newest message or deep link the store was told of (a late leave must not undo it).
GUARD_KEYS = ("hard_at",)
OPTIONAL_MEMBER_KEYS = ("invited_by", "invite_link", "proof_at")


@dataclass(frozen=True)
class Observation:
    """One person's status (and, for member events and listings, role) as of Telegram time `at`.

    `role` None: the route never changes roles (messages, deep links). `strictly_newer`: message
    activity reactivates only when newer than `status_at`. `create` False: only an existing
    membership may change (a listing's "not listed any more"). `seen_at`: the newest message the
    caller knows of and has not flushed yet (a late leave must not undo it). `evidence_at`: when
    the membership is proven from, if not `at` (history import verifies today what an export
    proved long ago). `keep_names`: an account that exists keeps its names (export display names).
    """

    person: Person
    status: str
    role: Optional[str]
    at: datetime
    source: str
    strictly_newer: bool = False
    create: bool = True
    seen_at: Optional[datetime] = None
    evidence_at: Optional[datetime] = None
    last_seen: Optional[datetime] = None
    actor: Optional[int] = None
    invited_by: Optional[int] = None
    invite_link: Optional[str] = None
    keep_names: bool = False


@dataclass
class Outcome:
    """What an observation did: the member's status afterwards (None: still no membership)."""

    telegram_id: int
    status: Optional[str] = None
    created: bool = False
    status_applied: bool = False
    changed: bool = False  # status or role took a new value (one membership_log entry)
    before: Optional[str] = None  # the status before (None: there was no membership)


@dataclass
class Decision:
    member: Optional[dict]            # the membership to write (None: none exists or is made)
    outcome: Outcome
    log: Optional[dict] = None        # a membership_log entry, when status or role changed
    departure: Optional[dict] = None  # a departure note to keep (leave of a non-member)
    clear_departure: bool = False
    dirty: bool = False               # member differs from what was read
    account: bool = False             # the account must be upserted (a membership is created)


def _earlier(at: datetime, source: str, than_at: Optional[datetime], than_source: Optional[str]) -> bool:
    if than_at is None:
        return True
    return (at, RANK.get(source, len(ROUTES))) < (than_at, RANK.get(than_source or "", len(ROUTES)))


SOFT_ROUTES = ("message_activity", "manual_registration", "history_import")


def _soft(obs: Observation) -> bool:
    """Soft evidence (a message, a deep link, an export) proves membership at a time but, unlike a
    member event or listing, never re-asserts the status of someone already active."""
    return obs.strictly_newer or (obs.status == ACTIVE and obs.source in SOFT_ROUTES)


def _status(m: dict, obs: Observation) -> bool:
    """The status rule that makes every order of the same events end alike (SPEC §2).

    `hard_at` is the time of the newest member event / listing / departure seen for this member.
    Its status holds unless soft evidence (a message) came strictly after it; then the member is
    active since the earliest such evidence. An older event than `hard_at` changes nothing.
    Returns whether the member changed."""
    s, s_at = m.get("status"), m.get("status_at")
    at, hard_at = obs.at, (m["hard_at"] if "hard_at" in m else s_at)  # no key: a seed document
    soft_active = s == ACTIVE and (hard_at is None or (s_at is not None and s_at > hard_at))
    if _soft(obs):
        if obs.status != ACTIVE:
            return False
        changed = False
        if m.get("proof_at") is None or m["proof_at"] < at:  # newest sign of presence
            m["proof_at"], changed = at, True
        if hard_at is not None and at <= hard_at:  # a member event at the same time wins
            return changed
        if s == ACTIVE and not soft_active:
            return changed  # active by a member event: a later message re-asserts nothing
        if soft_active and s_at is not None and s_at <= at:
            return changed  # already active since earlier evidence
        m["status"], m["status_at"] = ACTIVE, at
        return True
    if hard_at is not None and at < hard_at:
        return False  # stale: a newer member event is already applied
    m["hard_at"] = at
    if obs.status == ACTIVE:
        m["status"], m["status_at"] = ACTIVE, at
        return True
    seen = max(filter(None, (obs.seen_at, m.get("last_seen"), m.get("proof_at"))), default=None)
    if soft_active and s_at is not None and s_at > at:
        return True  # a message after this leave already made them active: it stands
    if seen is not None and seen > at:
        m["status"], m["status_at"] = ACTIVE, seen  # a newer message (maybe unflushed) proves them in
        return True
    m["status"], m["status_at"] = obs.status, at
    return True


def decide(club_id: str, current: Optional[dict], departure: Optional[dict], obs: Observation) -> Decision:
    """SPEC §2/§3 for one observation, given the membership and departure note as they are now.

    Pure, so the SQLite backend (inside a transaction) and the MongoDB one (before a write guarded
    on what it read) apply exactly the same rule."""
    tid = obs.person.id
    out = Outcome(tid)
    if current is None:
        if obs.status != ACTIVE:
            if not obs.create:
                return Decision(None, out)
            if departure is not None and departure["at"] > obs.at:
                return Decision(None, out)
            return Decision(None, out, departure={"club_id": club_id, "telegram_id": tid,
                                                  "status": obs.status, "at": obs.at})
        if not obs.create:
            return Decision(None, out)
        status, status_at, role, role_at = ACTIVE, obs.at, obs.role, (obs.at if obs.role else None)
        hard_at = None if _soft(obs) else obs.at
        dep = departure
        if dep is not None:
            hard_at = max(dep["at"], hard_at or dep["at"])
        if dep is not None and (dep["at"] > obs.at or (_soft(obs) and dep["at"] == obs.at)):
            # the later leave still holds, and with it the role a leave maps to
            status, status_at, role, role_at = dep["status"], dep["at"], "member", dep["at"]
        elif dep is not None and obs.role is None:
            role, role_at = "member", dep["at"]  # the leave's role stands until a newer role event
        role = role or "member"
        p = obs.person
        member = {"user_id": None, "telegram_id": tid, "username": p.username,
                  "first_name": p.first_name, "role": role, "status": status,
                  "joined_at": obs.evidence_at or obs.at, "last_seen": obs.last_seen,
                  "source": obs.source, "status_at": status_at, "role_at": role_at, "hard_at": hard_at,
                  "proof_at": obs.at if _soft(obs) else None}
        if obs.invite_link is not None or obs.invited_by is not None:
            member["invited_by"], member["invite_link"] = obs.invited_by, obs.invite_link
        out.status, out.created, out.status_applied, out.changed = status, True, status == ACTIVE, True
        log = {"club_id": club_id, "telegram_id": tid, "at": status_at, "from": None,
               "to": {"status": status, "role": role}, "source": obs.source, "actor": obs.actor,
               "invite_link": obs.invite_link, "invited_by": obs.invited_by}
        return Decision(member, out, log=log, clear_departure=dep is not None, dirty=True, account=True)

    m = dict(current)
    out.before = current.get("status")
    dirty = False
    before = (current.get("status"), current.get("role"))
    do_status = _status(m, obs)
    dirty = do_status or dirty
    r_at = m.get("role_at")
    do_role = obs.role is not None and (r_at is None or r_at <= obs.at)
    if do_role and (m.get("role") != obs.role or r_at != obs.at):
        m["role"], m["role_at"], dirty = obs.role, obs.at, True
    if obs.status == ACTIVE:  # every sign of membership is evidence; the earliest names the route
        ev_at = obs.evidence_at or obs.at
        if _earlier(ev_at, obs.source, m.get("joined_at"), m.get("source")):
            m["joined_at"], m["source"], dirty = ev_at, obs.source, True
            if obs.invite_link is not None or obs.invited_by is not None:
                m["invited_by"], m["invite_link"] = obs.invited_by, obs.invite_link
    if (obs.invite_link is not None or obs.invited_by is not None) and m.get("invite_link") is None \
            and m.get("invited_by") is None:
        m["invited_by"], m["invite_link"], dirty = obs.invited_by, obs.invite_link, True
    if obs.last_seen is not None and (m.get("last_seen") is None or m["last_seen"] < obs.last_seen):
        m["last_seen"], dirty = obs.last_seen, True
    after = (m.get("status"), m.get("role"))
    out.status, out.status_applied = m.get("status"), do_status
    log = None
    if after != before:
        out.changed = True
        log = {"club_id": club_id, "telegram_id": tid, "at": obs.at,
               "from": {"status": before[0], "role": before[1]},
               "to": {"status": after[0], "role": after[1]}, "source": obs.source,
               "actor": obs.actor, "invite_link": obs.invite_link, "invited_by": obs.invited_by}
    return Decision(m if dirty else None, out, log=log, dirty=dirty)


def account_fields(p: Person, at: datetime) -> Dict[str, Any]:
    return {"telegram_id": p.id, "username": p.username, "first_name": p.first_name,
            "last_name": p.last_name, "language_code": p.language_code, "updated_at": at}


@dataclass
class ClubIndex:
    """What start-up and re-warm need: each club's map entry and active member ids. `changed`
    holds only clubs whose version differs from the caller's `known` versions."""

    clubs: List[dict] = field(default_factory=list)   # {_id, telegram_group_id, previous_group_ids,
    #                                                    name, sync, version, active: [tid…]}
    removed: List[str] = field(default_factory=list)  # club ids the caller knew that are gone


class Store(Protocol):
    ops: int          # round trips so far (simulate's and the bench's db_ops)
    uri_label: str    # the URI with any secret redacted, for messages

    def before_call(self, name: str) -> None: ...   # fault-injection hooks (sim/faults.py)
    def after_call(self, name: str) -> None: ...
    def close(self) -> None: ...

    # clubs
    def club_by_group(self, chat_id: int) -> Optional[dict]: ...
    def club_by_id(self, club_id: str) -> Optional[dict]: ...
    def club_by_username(self, username: str) -> Optional[dict]: ...
    def all_clubs(self) -> List[dict]: ...
    def club_index(self, known: Optional[Dict[str, int]] = None) -> ClubIndex: ...
    def create_club(self, chat_id: int, name: str, created_by: Optional[str], sync: Dict[str, Any],
                    username: Optional[str] = None) -> Tuple[dict, bool]: ...
    def update_sync(self, club_id: str, fields: Dict[str, Any],
                    guard_at: Optional[datetime] = None) -> bool: ...
    # the welcome claim carries a token, so a retry whose first claim's reply was lost recognises
    # its own claim; it is released unless the post is confirmed (issue 12.6)
    def claim_welcome(self, club_id: str, token: Optional[str] = None) -> bool: ...
    def release_welcome(self, club_id: str, token: Optional[str] = None) -> None: ...
    def confirm_welcome(self, club_id: str, token: str) -> None: ...
    def migrate_club(self, club_id: str, old_id: int, new_id: int) -> None: ...
    def set_club_username(self, club_id: str, username: Optional[str]) -> None: ...

    # accounts
    def upsert_user(self, p: Person, at: datetime) -> str: ...
    def user_by_telegram_id(self, tid: int) -> Optional[dict]: ...
    def set_dm_blocked(self, tid: int, blocked: bool, at: datetime) -> bool: ...

    # members
    def member(self, club_id: str, tid: int) -> Optional[dict]: ...
    def observe(self, club_id: str, obs: Observation) -> Outcome: ...
    def observe_many(self, club_id: str, observations: Sequence[Observation],
                     complete_at: Optional[datetime] = None, complete_source: str = "member_import"
                     ) -> List[Outcome]: ...
    def flush_last_seen(self, seen: Dict[Tuple[str, int], datetime],
                        first_seen: Optional[Dict[Tuple[str, int], datetime]] = None,
                        active_since: Optional[Dict[Tuple[str, int], datetime]] = None) -> int: ...
    def active_count(self, club_id: str) -> int: ...  # active members with a Telegram id
    # active members the app added itself (no Telegram id, only in a shared MongoDB): counted in
    # sync.total_members_ayda as the app sees the club, never in drift, never marked left
    def app_only_active(self, club_id: str) -> int: ...
    # a write a backend finished later than the change (MongoDB's membership_log outbox): done now.
    # The flush does it too; no round trip when there is nothing to finish
    def settle(self) -> None: ...

    # departures (SPEC §2), log, erasure
    def departures_for(self, club_id: str, tids: Iterable[int]) -> Dict[int, dict]: ...
    def prune_departures(self, now: datetime) -> int: ...
    # insights (history, member, stats): what the log, the flush and reconcile leave behind
    def writers_by_week(self, club_id: str) -> Dict[str, int]: ...
    def record_reconcile(self, club_id: str, at: datetime, telegram: Optional[int], active: int,
                         drift: Optional[int]) -> None: ...
    def reconcile_history(self, club_id: str) -> List[dict]: ...
    def memberships_of(self, tid: int) -> List[dict]: ...
    def membership_log(self, club_id: Optional[str] = None, telegram_id: Optional[int] = None,
                       since: Optional[datetime] = None) -> List[dict]: ...
    def forget_preview(self, tid: int) -> Dict[str, Any]: ...
    def forget(self, tid: int) -> Dict[str, Any]: ...

    # whole-store views (store copy, doctor, snapshots)
    def counts(self) -> Dict[str, int]: ...
    def export(self) -> Dict[str, List[dict]]: ...
    def import_documents(self, docs: Dict[str, List[dict]]) -> Dict[str, int]: ...
    def check(self) -> List[str]: ...

    # `forget` tells running `serve`s through the store (issue 12.2). note_forgotten records an
    # erasure at `at` WITHOUT the id: a random salt and forgotten_key(salt, id); notes older than
    # an hour are pruned. forgotten_since(at): [(salt, key, at)] noted strictly after `at` (all
    # kept for None), oldest first. One round trip each.
    def note_forgotten(self, tid: int, at: datetime) -> None: ...
    def forgotten_since(self, at: Optional[datetime]) -> List[Tuple[str, str, datetime]]: ...


def forgotten_key(salt: str, telegram_id: int) -> str:
    """How a forget note names the person without holding the id (issue 12.2). A hash of a
    10-digit id can be brute-forced: the note is short-lived, not anonymous."""
    return hashlib.sha256(f"{salt}:{telegram_id}".encode()).hexdigest()
