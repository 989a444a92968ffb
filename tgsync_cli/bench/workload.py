"""The bench's workload: clubs, members, a week of messages, joins and leaves, one restart."""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Dict, List, Optional, Tuple

from tgsync_cli.core.events import (
    ChatRef,
    MemberState,
    MemberStatusChanged,
    MessageSeen,
    Person,
)
from tgsync_cli.core.store import Store
from tgsync_cli.stores import new_id

BOT_ID = 9_000_000
T0 = datetime(2025, 3, 3, 0, 0, 0)
DAY = 86_400
RESTART = "restart"
SCOPES = ("club", "total")


# -- workload -------------------------------------------------------------------------------------
@dataclass
class Workload:
    clubs: List[ChatRef]
    initial: Dict[int, List[Person]]  # chat id -> members at the start (first one is the creator)
    events: List[Tuple[int, object]]  # (simulated seconds since T0, event or RESTART)
    days: int
    messages: int = 0
    joins: int = 0
    departures: int = 0
    final_active: Dict[int, set] = field(default_factory=dict)


def generate(clubs: int = 10, members: int = 300, days: int = 7, messages_per_day: int = 5000,
             new_per_day: float = 0.02, leave_per_day: float = 0.01, zipf_s: float = 1.0,
             seed: int = 5, scope: str = "club") -> Workload:
    """Messages spread over each day, senders drawn by Zipf rank among the club's current
    members; 2 % of members join a day (member events, route 3), 1 % leave (one in five kicked);
    one restart at the start of the middle day. `scope` says how to read messages_per_day:
    "club" (each club gets that many a day) or "total" (all clubs together, each message's
    club drawn at random)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    rng = random.Random(seed)
    chats = [ChatRef(-1001_000_000_000 - c, "supergroup", f"Run club {c + 1}") for c in range(clubs)]
    next_uid = [1_000_000]

    def person() -> Person:
        next_uid[0] += 1
        uid = next_uid[0]
        return Person(uid, first_name=f"Runner{uid}", username=f"runner{uid}")

    ranked: Dict[int, List[Person]] = {ch.id: [person() for _ in range(members)] for ch in chats}
    initial = {cid: list(ps) for cid, ps in ranked.items()}
    slots: List[Tuple[int, str, int]] = []  # (second, kind, chat)
    for d in range(days):
        base = d * DAY
        if scope == "club":
            for ch in chats:
                for _ in range(messages_per_day):
                    slots.append((base + rng.randrange(DAY), "m", ch.id))
        else:
            for _ in range(messages_per_day):
                slots.append((base + rng.randrange(DAY), "m", rng.choice(chats).id))
        for ch in chats:
            for _ in range(max(1, round(members * new_per_day))):
                slots.append((base + rng.randrange(DAY), "j", ch.id))
            for _ in range(max(1, round(members * leave_per_day))):
                slots.append((base + rng.randrange(DAY), "l", ch.id))
    slots.sort()
    by_id = {ch.id: ch for ch in chats}
    cum: Dict[int, List[float]] = {}

    def weights(cid: int) -> List[float]:
        if cid not in cum:
            cum[cid] = list(accumulate(1.0 / (k + 1) ** zipf_s for k in range(len(ranked[cid]))))
        return cum[cid]

    w = Workload(chats, initial, [], days)
    restart_at = (days // 2) * DAY if days > 1 else DAY // 2
    restarted = False
    member, left, kicked = MemberState("member"), MemberState("left"), MemberState("kicked")
    for t, kind, cid in slots:
        if not restarted and t >= restart_at:
            w.events.append((restart_at, RESTART))
            restarted = True
        at = T0 + timedelta(seconds=t)
        chat = by_id[cid]
        if kind == "m":
            cw = weights(cid)
            k = bisect_left(cw, rng.random() * cw[-1])
            w.events.append((t, MessageSeen(chat, ranked[cid][min(k, len(ranked[cid]) - 1)], at)))
            w.messages += 1
        elif kind == "j":
            p = person()
            ranked[cid].insert(rng.randrange(len(ranked[cid]) + 1), p)  # newcomers get any activity rank
            cum.pop(cid, None)
            w.events.append((t, MemberStatusChanged(chat, p, member, at, old=left)))
            w.joins += 1
        else:
            p = ranked[cid].pop(rng.randrange(1, len(ranked[cid])))  # the creator stays
            cum.pop(cid, None)
            new = kicked if rng.random() < 0.2 else left
            w.events.append((t, MemberStatusChanged(chat, p, new, at, old=member)))
            w.departures += 1
    if not restarted:
        w.events.append((restart_at, RESTART))
    w.final_active = {cid: {p.id for p in ps} for cid, ps in ranked.items()}
    return w


def starting_documents(w: Workload) -> Dict[str, list]:
    """The same starting data on every side: the clubs, their members, their accounts."""
    users, clubs = [], []
    for ch in w.clubs:
        ms = []
        for i, p in enumerate(w.initial[ch.id]):
            uid = new_id("user")
            users.append({"_id": uid, "telegram_id": p.id, "username": p.username,
                          "first_name": p.first_name, "last_name": None, "language_code": None,
                          "created_at": T0 - timedelta(days=30), "updated_at": T0 - timedelta(days=30)})
            ms.append({"user_id": uid, "telegram_id": p.id, "username": p.username,
                       "first_name": p.first_name, "role": "organizer" if i == 0 else "member",
                       "status": "active", "joined_at": T0 - timedelta(days=30), "last_seen": None,
                       "source": "admin_import" if i == 0 else "member_import",
                       "status_at": T0 - timedelta(days=30), "role_at": T0 - timedelta(days=30)})
        clubs.append({"_id": new_id("club"), "name": ch.title, "telegram_group_id": ch.id,
                      "created_by": users[-len(ms)]["_id"], "members": ms,
                      "sync": {"bot_is_admin": True, "bot_present": True,
                               "welcome_posted": True, "bot_status_at": T0 - timedelta(days=30)}})
    return {"clubs": clubs, "users": users}


def populate(store: Store, w: Workload, docs: Optional[Dict[str, list]] = None) -> None:
    store.import_documents(docs or starting_documents(w))
    store.ops = 0
