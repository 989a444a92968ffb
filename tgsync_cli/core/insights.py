"""Club insights from the membership log: what organizers ask once the roster is right.

Pure functions over `membership_log` entries, weekly writer counts and reconcile
figures, so the store stays a store and every number here is testable without one.
A week is an ISO week (`2024-W49`): organizers plan by weeks, and ISO weeks never straddle years
ambiguously.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional

from tgsync_cli.core.evidence import ACTIVE


def iso_week(at: datetime) -> str:
    y, w, _ = at.isocalendar()
    return f"{y}-W{w:02d}"


def week_start(at: datetime) -> datetime:
    d = at - timedelta(days=at.isocalendar()[2] - 1)
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class WeekStats:
    week: str
    joined: int = 0
    left: int = 0
    kicked: int = 0
    active_writers: int = 0
    drift: Optional[int] = None
    joins_by_link: Dict[str, int] = field(default_factory=dict)
    joins_by_inviter: Dict[str, int] = field(default_factory=dict)
    requests_approved: int = 0   # join requests let in this week (by tgsync, an admin or the app)
    requests_declined: int = 0   # declined, or gone unanswered by tgsync (an admin declined it)
    requests_pending: int = 0    # still waiting at the week's end

    @property
    def net(self) -> int:
        return self.joined - self.left - self.kicked

    def as_json(self) -> Dict[str, Any]:
        return {"week": self.week, "joined": self.joined, "left": self.left, "kicked": self.kicked,
                "net": self.net, "active_writers": self.active_writers, "drift": self.drift,
                "joins_by_link": dict(self.joins_by_link),
                "joins_by_inviter": dict(self.joins_by_inviter),
                "requests_approved": self.requests_approved,
                "requests_declined": self.requests_declined, "requests_pending": self.requests_pending}


def change_kind(entry: Mapping[str, Any]) -> Optional[str]:
    """joined / left / kicked / promoted / demoted, or None for a change that is none of these."""
    before = entry.get("from") or {}
    after = entry.get("to") or {}
    was, now = before.get("status"), after.get("status")
    if now == ACTIVE and was != ACTIVE:
        return "joined"
    if was == ACTIVE and now == "left":
        return "left"
    if was == ACTIVE and now == "kicked":
        return "kicked"
    if was == now == ACTIVE and before.get("role") != after.get("role"):
        return "promoted" if after.get("role") == "organizer" else "demoted"
    return None


def weekly_stats(log: Iterable[Mapping[str, Any]], writers_by_week: Mapping[str, int],
                 reconciles: Iterable[Mapping[str, Any]], weeks: int, now: datetime) -> List[WeekStats]:
    """The last `weeks` ISO weeks up to `now`, oldest first; empty weeks included so a chart
    shows quiet weeks as quiet instead of skipping them."""
    first = week_start(now) - timedelta(weeks=weeks - 1)
    rows: Dict[str, WeekStats] = {}
    for i in range(weeks):
        wk = iso_week(first + timedelta(weeks=i))
        rows[wk] = WeekStats(wk, active_writers=int(writers_by_week.get(wk, 0)))
    for e in log:
        row = rows.get(iso_week(e["at"]))
        kind = change_kind(e)
        if row is None or kind not in ("joined", "left", "kicked"):
            continue
        setattr(row, kind, getattr(row, kind) + 1)
        if kind == "joined" and e.get("invite_link"):
            row.joins_by_link[str(e["invite_link"])] = row.joins_by_link.get(str(e["invite_link"]), 0) + 1
        if kind == "joined" and e.get("invited_by") is not None:
            key = str(e["invited_by"])
            row.joins_by_inviter[key] = row.joins_by_inviter.get(key, 0) + 1
    for r in sorted(reconciles, key=lambda r: r["at"]):
        row = rows.get(iso_week(r["at"]))
        if row is not None:
            row.drift = r.get("drift")  # the week's last reconcile stands for it
    return list(rows.values())


def count_join_requests(rows: List[WeekStats], requests: Iterable[Mapping[str, Any]]) -> None:
    """Join requests per week from the requests ledger: approved and declined in the week they
    were answered; pending in every week whose end finds them unanswered. Telegram tells a bot
    nothing of an admin's decline, so a request that is gone unanswered counts as declined."""
    if not rows:
        return
    ends = {r.week: datetime.strptime(r.week + "-1", "%G-W%V-%u") + timedelta(weeks=1) for r in rows}
    by_week = {r.week: r for r in rows}
    for q in requests:
        if q.get("action") != "approve" or q.get("at") is None:
            continue
        outcome, done = q.get("outcome"), q.get("done_at")
        if done is not None and q.get("state") == "done":
            row = by_week.get(iso_week(done))
            if row is not None and outcome == "approved":
                row.requests_approved += 1
            elif row is not None and outcome in ("declined", "gone"):
                row.requests_declined += 1
        for r in rows:
            end = ends[r.week]
            if q["at"] < end and (q.get("state") == "waiting" or (done is not None and done >= end)):
                r.requests_pending += 1


def link_totals(rows: Iterable[WeekStats]) -> Counter:
    total: Counter = Counter()
    for r in rows:
        total.update(r.joins_by_link)
    return total


def activity_rows(seen: Mapping[Any, datetime], first_seen: Optional[Mapping[Any, datetime]] = None):
    """(club_id, week, telegram_id) for each writer in a last_seen batch: the week of their newest
    message and of their first one (a flush window can straddle a week's end)."""
    rows = {(cid, iso_week(at), tid) for (cid, tid), at in seen.items()}
    rows |= {(cid, iso_week(at), tid) for (cid, tid), at in (first_seen or {}).items()}
    return sorted(rows)
