"""`store copy` into a store that already has the club: member by member, never a replacement.

The target may be the Ayda Run app's own database, where the club document carries the app's
fields (`city`, the app's name for the club) and members the app added itself. Those stay. A
member both sides hold keeps the newest evidence of each kind: the newer status (by `status_at`),
the newer role (by `role_at`, an app role such as `coach` kept unless the source says organizer),
the earliest evidence of membership (`joined_at`/`source`, ties by route), the newest message.
The same rule serves the copy itself and its `--dry-run` plan, so the plan is what the copy does."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

from tgsync_cli.core.evidence import RANK, seen_after

# the member fields tgsync owns (everything else on an entry is the app's)
OWN = ("user_id", "username", "first_name", "role", "status", "joined_at", "last_seen", "source",
       "status_at", "role_at", "hard_at", "proof_at", "prior_at", "confirmed_at", "seen_times",
       "invited_by", "invite_link")


def _newer(a: Optional[datetime], b: Optional[datetime]) -> bool:
    """a is newer evidence than b (a time beats none)."""
    if a is None or not isinstance(a, datetime):
        return False
    return b is None or not isinstance(b, datetime) or a > b


def _decided_at(m: Dict[str, Any]) -> Optional[datetime]:
    """When the member's status was last decided: status_at stays put while member events only
    confirm it (hard_at moves on), and is after hard_at for someone active by messages alone."""
    times = [t for t in (m.get("status_at"), m.get("hard_at")) if isinstance(t, datetime)]
    return max(times, default=None)


def merge_member(cur: Dict[str, Any], inc: Dict[str, Any]) -> Dict[str, Any]:
    """The fields of `cur` (the target's member, read as datetimes) that `inc` (the source's)
    changes: {} when the target already holds the newest of everything."""
    out: Dict[str, Any] = {}
    if _newer(_decided_at(inc), _decided_at(cur)):
        for k in ("status", "status_at", "prior_at", "confirmed_at"):
            out[k] = inc.get(k)
    if _newer(inc.get("hard_at"), cur.get("hard_at")):
        out["hard_at"] = inc.get("hard_at")
    hard = max((t for t in (inc.get("hard_at"), cur.get("hard_at")) if isinstance(t, datetime)), default=None)
    times = seen_after([t for t in (*(inc.get("seen_times") or ()), *(cur.get("seen_times") or ()))
                        if isinstance(t, datetime)], hard)
    if times != cur.get("seen_times"):  # the message times after the newest member event of either
        out["seen_times"] = times
    if _newer(inc.get("role_at"), cur.get("role_at")) and inc.get("role") != cur.get("role"):
        app_role = cur.get("role") not in (None, "organizer", "member")
        if not (app_role and inc.get("role") == "member"):
            out["role"], out["role_at"] = inc.get("role"), inc.get("role_at")
    ij, cj = inc.get("joined_at"), cur.get("joined_at")
    if isinstance(ij, datetime) and (not isinstance(cj, datetime) or (ij, RANK.get(inc.get("source") or "", 99))
                                     < (cj, RANK.get(cur.get("source") or "", 99))):
        out["joined_at"], out["source"] = ij, inc.get("source")
        if inc.get("invite_link") is not None or inc.get("invited_by") is not None:
            out["invite_link"], out["invited_by"] = inc.get("invite_link"), inc.get("invited_by")
    for k in ("last_seen", "proof_at"):
        if _newer(inc.get(k), cur.get(k)):
            out[k] = inc.get(k)
    for k in ("username", "first_name", "user_id", "invited_by", "invite_link"):
        if cur.get(k) is None and inc.get(k) is not None and k not in out:
            out[k] = inc.get(k)
    return {k: v for k, v in out.items() if cur.get(k) != v or k not in cur}


def merge_sync(cur: Dict[str, Any], inc: Dict[str, Any]) -> Dict[str, Any]:
    """sync.* of the newer reconcile (by last_sync); keys the target lacks in any case."""
    newer = _newer(inc.get("last_sync"), cur.get("last_sync")) or (
        inc.get("last_sync") is not None and inc.get("last_sync") == cur.get("last_sync"))
    return {k: v for k, v in inc.items() if (newer or k not in cur) and cur.get(k) != v}


@dataclass
class ClubPlan:
    club_id: str
    telegram_group_id: Optional[int]
    name: Optional[str]
    new: bool
    added: List[int] = field(default_factory=list)
    updated: Dict[int, List[str]] = field(default_factory=dict)  # telegram id -> fields
    unchanged: int = 0
    kept_app_only: int = 0  # the target's members with no Telegram id
    kept_target_only: int = 0  # the target's Telegram members the source does not hold


@dataclass
class CopyPlan:
    source: str
    target: str
    clubs: List[ClubPlan] = field(default_factory=list)
    accounts_new: int = 0
    accounts_updated: int = 0
    log_new: int = 0
    departures: int = 0

    def as_json(self) -> Dict[str, Any]:
        out = asdict(self)
        for c in out["clubs"]:
            c["updated"] = {str(k): v for k, v in c["updated"].items()}
        out["dry_run"] = True
        return out

    def lines(self) -> List[str]:
        out = [f"dry run: copying {self.source} to {self.target} would change:"]
        for c in self.clubs:
            head = f"club {c.name or ''} ({c.telegram_group_id})"
            if c.new:
                out.append(f"  {head}: new, {len(c.added)} member(s)")
                continue
            bits = [f"add {len(c.added)}", f"update {len(c.updated)}", f"leave {c.unchanged} as they are"]
            if c.kept_app_only:
                bits.append(f"keep {c.kept_app_only} app-only")
            if c.kept_target_only:
                bits.append(f"keep {c.kept_target_only} only the target has")
            out.append(f"  {head}: merge into {c.club_id}: " + ", ".join(bits))
            for tid, keys in list(c.updated.items())[:10]:
                out.append(f"    {tid}: {', '.join(keys)}")
        out.append(f"  accounts: {self.accounts_new} new, {self.accounts_updated} updated; "
                   f"log entries: {self.log_new} new; departure notes: {self.departures}")
        return out


def _tid(v: Any) -> Optional[int]:
    from tgsync_cli.stores.mongo_shapes import as_tid

    return as_tid(v)


def plan_club(target: Optional[dict], c: dict) -> ClubPlan:
    from tgsync_cli.stores.mongo_shapes import read_member

    gid = _tid(c.get("telegram_group_id"))
    members = [read_member(m) for m in c.get("members") or []]
    if target is None:
        return ClubPlan(c["_id"], gid, c.get("name"), True, added=[m["telegram_id"] for m in members
                                                                     if m.get("telegram_id") is not None])
    plan = ClubPlan(target["_id"], gid, target.get("name"), False)
    have: Dict[int, dict] = {}
    for m in target.get("members") or []:
        rm = read_member(m)
        if rm.get("telegram_id") is None:
            plan.kept_app_only += 1
        else:
            have[rm["telegram_id"]] = rm
    seen = set()
    for m in members:
        tid = m.get("telegram_id")
        if tid is None:
            continue
        seen.add(tid)
        cur = have.get(tid)
        if cur is None:
            plan.added.append(tid)
            continue
        change = merge_member(cur, m)
        if change:
            plan.updated[tid] = sorted(change)
        else:
            plan.unchanged += 1
    plan.kept_target_only = len(set(have) - seen)
    return plan


def plan_copy(source, target) -> CopyPlan:
    """What `store copy` would change in `target`, from both stores' documents; writes nothing."""
    from tgsync_cli.stores.sqlite_copy import log_key

    src, dst = source.export(), target.export()
    plan = CopyPlan(source.uri_label, target.uri_label)
    for c in src.get("clubs", []):  # the target's club as read, the app's members included
        gid = _tid(c.get("telegram_group_id"))
        have = target.club_by_id(c["_id"]) or (target.club_by_group(gid) if gid is not None else None)
        plan.clubs.append(plan_club(have, c))
    accounts = {_tid(u.get("telegram_id")): u for u in dst.get("users", [])}
    for u in src.get("users", []):
        cur = accounts.get(_tid(u.get("telegram_id")))
        if cur is None:
            plan.accounts_new += 1
        elif any(cur.get(k) != u.get(k) for k in ("username", "first_name", "last_name", "language_code",
                                                  "dm_blocked")):
            plan.accounts_updated += 1
    have = {log_key(e) for e in dst.get("membership_log", [])}
    plan.log_new = len({log_key(e) for e in src.get("membership_log", [])} - have)
    plan.departures = len(src.get("departures", []))
    return plan

