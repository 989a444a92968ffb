"""The evidence rule: which observation sets a member's status, role, source and joined_at.

Every backend applies an observation with `decide()` (pure, so SQLite inside a transaction and
MongoDB before a write guarded on what it read apply exactly the same rule). The set-based forms
of the same rule (the last_seen flush in SQL and as MongoDB filters) take their route lists from
`ROUTES` here, so the order of evidence is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Tuple

from tgsync_cli.core.events import Person

ACTIVE = "active"
# The earliest evidence decides `source`; equal times go to the earlier route here.
ROUTES = ("admin_import", "manual_registration", "chat_member_event", "message_activity",
          "service_message", "member_import", "history_import")
RANK = {r: i for i, r in enumerate(ROUTES)}
MEMBER_KEYS = ("user_id", "telegram_id", "username", "first_name", "role", "status", "joined_at",
               "last_seen", "source", "status_at", "role_at")
# Added fields (the schema allows them): hard_at, the newest member event's time (the status guard's
# memory; always present, so a seed document without it can be told apart), proof_at, the
# newest message or deep link the store was told of (a late leave must not undo it), and
# prior_at, for a member active by member events: the newest member event known to have said
# otherwise (another status or role) before status_at, so that an older event confirming them,
# delivered late, can tell whether it belongs to the same stretch; and confirmed_at, the earliest
# few events since status_at that confirmed it (where the stretch resumes if a late event shows
# it was interrupted); seen_times, the earliest few message times after hard_at (a member active by
# messages alone is active since the earliest of them, whatever order they and a late leave come in).
GUARD_KEYS = ("hard_at",)
OPTIONAL_MEMBER_KEYS = ("invited_by", "invite_link", "proof_at", "prior_at", "confirmed_at", "seen_times")
# Telegram resends an update for a day at most: a late event older than this many confirmations
# (reconciles, repeated member events) does not arrive; past them status_at is the newest known.
KEEP_CONFIRMATIONS = 8
# Message times kept after the newest member event: a late leave falling after more than this many
# of them makes the member active since the newest message known instead of the first after it.
KEEP_SEEN_TIMES = 8


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
    actor: Optional[Any] = None  # a Telegram id, or who asked (the app's id for its user)
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
    member: Optional[Dict[str, Any]]  # the membership to write (None: none exists or is made)
    outcome: Outcome
    log: Optional[Dict[str, Any]] = None  # a membership_log entry, when status or role changed
    departure: Optional[Dict[str, Any]] = None  # a departure note to keep (leave of a non-member)
    clear_departure: bool = False
    dirty: bool = False               # member differs from what was read
    account: bool = False             # the account must be upserted (a membership is created)
    # earlier evidence of a member: (joined_at now, before); the account's times may follow it back
    dated_back: Optional[Tuple[datetime, datetime]] = None


def _earlier(at: datetime, source: str, than_at: Optional[datetime], than_source: Optional[str]) -> bool:
    if than_at is None:
        return True
    return (at, RANK.get(source, len(ROUTES))) < (than_at, RANK.get(than_source or "", len(ROUTES)))


SOFT_ROUTES = ("message_activity", "manual_registration", "history_import")
# The routes a message at the same time as their evidence takes `source` from (ties go to the
# earlier route): what the last_seen flush compares with, in SQL and in MongoDB filters.
MESSAGES = "message_activity"
AFTER_MESSAGES = ROUTES[RANK[MESSAGES] + 1:]


def _soft(obs: Observation) -> bool:
    """Soft evidence (a message, a deep link, an export) proves membership at a time but, unlike a
    member event or listing, never re-asserts the status of someone already active."""
    return obs.strictly_newer or (obs.status == ACTIVE and obs.source in SOFT_ROUTES)


def _status(m: Dict[str, Any], obs: Observation) -> bool:
    """The status rule that makes every order of the same events end alike.

    `hard_at` is the time of the newest member event / listing / departure seen for this member.
    Its status holds unless soft evidence (a message) came strictly after it; then the member is
    active since the earliest such evidence. An older event than `hard_at` changes no status.
    `status_at` is when the current status and role were set: an event that only confirms an
    active member's status and role moves `hard_at` alone. Returns whether the rule applied."""
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
        kept = seen_after(m.get("seen_times"), None, at)
        if kept != m.get("seen_times"):
            m["seen_times"], changed = kept, True
        if s == ACTIVE and not soft_active:
            return changed  # active by a member event: a later message re-asserts nothing
        if soft_active and s_at is not None and s_at <= at:
            return changed  # already active since earlier evidence
        m["status"], m["status_at"] = ACTIVE, min(kept or (at,))  # the earliest sign since hard_at
        return True
    event_active = s == ACTIVE and not soft_active and s_at is not None
    if hard_at is not None and at < hard_at:
        if event_active and s_at is not None:
            _stale(m, obs, s_at, hard_at)
        return False  # stale: a newer member event is already applied, its status stands
    m["seen_times"] = seen_after(m.get("seen_times"), at)  # messages before it prove nothing now
    if event_active and obs.status == ACTIVE and (_role_kept(m, obs) or _role_blocked(m, obs)):
        m["hard_at"] = at  # a confirmation: the status still holds, and was set when it was
        if s_at is not None and at > s_at:
            m["confirmed_at"] = _confirmed(m.get("confirmed_at"), at)
        return True
    m["hard_at"] = at
    m["prior_at"] = m["confirmed_at"] = None  # kept only while active by member events (below)
    if obs.status == ACTIVE:
        m["status"], m["status_at"], m["prior_at"] = ACTIVE, at, hard_at
        return True
    seen = max(filter(None, (obs.seen_at, m.get("last_seen"), m.get("proof_at"))), default=None)
    if soft_active and s_at is not None and s_at > at:
        return True  # a message after this leave already made them active: it stands
    if seen is not None and seen > at:  # a newer message (maybe unflushed) proves them in, since
        # the earliest one after this event that is known (the flush lowers it to an unflushed one)
        after = [t for t in (*(m.get("seen_times") or ()), obs.seen_at, m.get("last_seen"), m.get("proof_at"))
                 if t is not None and t > at]
        m["status"], m["status_at"] = ACTIVE, min(after)
        return True
    m["status"], m["status_at"] = obs.status, at
    return True


def _stale(m: Dict[str, Any], obs: Observation, s_at: datetime, hard_at: datetime) -> None:
    """An event older than the newest one changes no status, but tells when an active member's
    status was set. Saying the same, after the last event known to say otherwise: the stretch
    began no later than it (status_at moves back). Saying otherwise: it bounds the stretch from
    below; if it falls inside it, the status was set again after it, and as the confirmations in
    between are not kept, the newest event known (`hard_at`) stands for that time."""
    prior, confirmed = m.get("prior_at"), m.get("confirmed_at")
    if obs.status == ACTIVE and _role_kept(m, obs):
        if prior is not None and obs.at <= prior:
            return  # before the last event that said otherwise: another stretch
        if obs.at < s_at:
            m["status_at"], m["confirmed_at"] = obs.at, _confirmed(confirmed, s_at)
        elif obs.at > s_at:
            m["confirmed_at"] = _confirmed(confirmed, obs.at)
        return
    if obs.status == ACTIVE and not _role_blocked(m, obs):
        return  # only the role differs, and it still applies by its own clock: decide places it
    if obs.at >= s_at:  # the stretch resumed at the first confirmation after this event
        resumed = min(t for t in [*(confirmed or ()), hard_at] if t > obs.at)
        m["status_at"] = resumed
        m["confirmed_at"] = _confirmed([t for t in confirmed or () if t > resumed])
    if prior is None or obs.at > prior:
        m["prior_at"] = obs.at


def seen_after(times: Optional[List[datetime]], after: Optional[datetime],
               add: Optional[datetime] = None) -> Optional[List[datetime]]:
    """The earliest KEEP_SEEN_TIMES distinct message times strictly after `after` (None: none)."""
    pool = set(times or ()) | ({add} if add is not None else set())
    out = sorted(t for t in pool if after is None or t > after)[:KEEP_SEEN_TIMES]
    return out or None


def _confirmed(times: Optional[List[datetime]], add: Optional[datetime] = None) -> Optional[List[datetime]]:
    """The earliest KEEP_CONFIRMATIONS distinct times (None: none)."""
    out = sorted(set(times or ()) | ({add} if add is not None else set()))[:KEEP_CONFIRMATIONS]
    return out or None


def _role_kept(m: Dict[str, Any], obs: Observation) -> bool:
    """The observation names no role, or the one the member has."""
    return obs.role is None or obs.role == m.get("role")


def _role_blocked(m: Dict[str, Any], obs: Observation) -> bool:
    """A newer role event is already applied: this one's role changes nothing."""
    role_at = m.get("role_at")
    return role_at is not None and role_at > obs.at


def decide(club_id: str, current: Optional[Mapping[str, Any]], departure: Optional[Mapping[str, Any]],
           obs: Observation) -> Decision:
    """The rule for one observation, given the membership and departure note as they are now.

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
        prior_at = None  # an active member by a join that came after a leave: that leave
        if dep is not None:
            hard_at = max(dep["at"], hard_at or dep["at"])
            if not _soft(obs) and dep["at"] < obs.at:
                prior_at = dep["at"]
        if dep is not None and (dep["at"] > obs.at or (_soft(obs) and dep["at"] == obs.at)):
            # the later leave still holds, and with it the role a leave maps to
            status, status_at, role, role_at = dep["status"], dep["at"], "member", dep["at"]
        elif dep is not None and obs.role is None:
            role, role_at = "member", dep["at"]  # the leave's role stands until a newer role event
        role = role or "member"
        p = obs.person
        member: Dict[str, Any]
        member = {"user_id": None, "telegram_id": tid, "username": p.username,
                  "first_name": p.first_name, "role": role, "status": status,
                  "joined_at": obs.evidence_at or obs.at, "last_seen": obs.last_seen,
                  "source": obs.source, "status_at": status_at, "role_at": role_at, "hard_at": hard_at,
                  "proof_at": obs.at if _soft(obs) else None, "prior_at": prior_at, "confirmed_at": None,
                  "seen_times": [obs.at] if _soft(obs) and (hard_at is None or obs.at > hard_at) else None}
        if obs.invite_link is not None or obs.invited_by is not None:
            member["invited_by"], member["invite_link"] = obs.invited_by, obs.invite_link
        out.status, out.created, out.status_applied, out.changed = status, True, status == ACTIVE, True
        created_log: Dict[str, Any] = {
            "club_id": club_id, "telegram_id": tid, "at": status_at, "from": None,
            "to": {"status": status, "role": role}, "source": obs.source, "actor": obs.actor,
            "invite_link": obs.invite_link, "invited_by": obs.invited_by}
        return Decision(member, out, log=created_log, clear_departure=dep is not None, dirty=True, account=True)

    m = dict(current)
    dated_back: Optional[Tuple[datetime, datetime]] = None
    out.before = current.get("status")
    dirty = False
    before = (current.get("status"), current.get("role"))
    do_status = _status(m, obs)
    dirty = do_status or dirty
    r_at = m.get("role_at")
    do_role = obs.role is not None and (r_at is None or r_at <= obs.at)
    if do_role and (m.get("role") != obs.role or r_at != obs.at):
        if m.get("role") != obs.role and m.get("status_at") is not None and m["status_at"] < obs.at:
            m["status_at"] = obs.at  # a new role: status and role as they are now were set then
            m["confirmed_at"] = _confirmed([t for t in m.get("confirmed_at") or () if t > obs.at])
        m["role"], m["role_at"], dirty = obs.role, obs.at, True
    if obs.status == ACTIVE:  # every sign of membership is evidence; the earliest names the route
        ev_at = obs.evidence_at or obs.at
        if _earlier(ev_at, obs.source, m.get("joined_at"), m.get("source")):
            if m.get("joined_at") is not None and ev_at < m["joined_at"]:
                dated_back = (ev_at, m["joined_at"])
            m["joined_at"], m["source"], dirty = ev_at, obs.source, True
            if obs.invite_link is not None or obs.invited_by is not None:
                m["invited_by"], m["invite_link"] = obs.invited_by, obs.invite_link
    if (obs.invite_link is not None or obs.invited_by is not None) and m.get("invite_link") is None \
            and m.get("invited_by") is None:
        m["invited_by"], m["invite_link"], dirty = obs.invited_by, obs.invite_link, True
    if obs.last_seen is not None and (m.get("last_seen") is None or m["last_seen"] < obs.last_seen):
        m["last_seen"], dirty = obs.last_seen, True
    dirty = dirty or any(m.get(k) != current.get(k) for k in m)
    after = (m.get("status"), m.get("role"))
    out.status, out.status_applied = m.get("status"), do_status
    log: Optional[Dict[str, Any]] = None
    if after != before:
        out.changed = True
        log = {"club_id": club_id, "telegram_id": tid, "at": obs.at,
               "from": {"status": before[0], "role": before[1]},
               "to": {"status": after[0], "role": after[1]}, "source": obs.source,
               "actor": obs.actor, "invite_link": obs.invite_link, "invited_by": obs.invited_by}
    return Decision(m if dirty else None, out, log=log, dirty=dirty, dated_back=dated_back)
