"""The store fails at the worst moment; retrying the event converges on the fault-free roster.

Every event the engine handles is retried by the pipeline until it applies, so each handler
must be safe to re-run after it failed halfway (some writes done, the rest not). These stories
fail every single store call of a realistic club's week in turn, and every prefix of a bulk
write, and compare the store with the run where nothing failed.
"""

from datetime import datetime, timedelta

import pytest

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.errors import BotNotInChat, StoreUnavailable
from tgsync_cli.core.events import (BotStatusChanged, ChatMigrated, ChatRef, DeepLinkStart, MemberState,
                               MemberStatusChanged, MessageSeen, Person, RosterEntry, RosterObserved)
from tgsync_cli.sim.faults import FaultyStore, duplicates, snapshot
from tgsync_cli.core.gateway import BotIdentity, ChatMemberInfo
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

BOT = Person(9000, is_bot=True, first_name="Ayda", username="ayda_bot")
OLD = ChatRef(-4001, "group", "Morning Tempo")
NEW = ChatRef(-1004001, "supergroup", "Morning Tempo")
T0 = datetime(2025, 6, 1, 6, 0)
P = {i: Person(i, first_name=n) for i, n in
     {1: "Asel", 2: "Bolat", 3: "Cyrus", 4: "Dariga", 5: "Yerlan", 6: "Zere"}.items()}
ADMIN, MEMBER, LEFT = MemberState("administrator"), MemberState("member"), MemberState("left")


class Telegram:
    """A group as Telegram would answer about it; records what the bot posted."""

    def __init__(self):
        self.members = {1: MemberState("creator"), 2: ADMIN, 3: MEMBER, 6: MEMBER}
        self.bot_in = True
        self.sent = []

    def me(self):
        return BotIdentity(BOT.id, BOT.username)

    def chat_info(self, chat_id):
        from tgsync_cli.core.gateway import ChatInfo
        return ChatInfo(chat_id, "supergroup")

    def get_admins(self, chat_id):
        return [ChatMemberInfo(P[u], s) for u, s in self.members.items()
                if s.status in ("creator", "administrator")]

    def get_member(self, chat_id, user_id):
        if not self.bot_in:
            raise BotNotInChat("bot is not a member")
        return ChatMemberInfo(P.get(user_id, Person(user_id)), self.members.get(user_id, LEFT))

    def iter_member_pages(self, chat_id):
        return iter([[ChatMemberInfo(P[u], s) for u, s in self.members.items()]])

    def member_count(self, chat_id):
        return len(self.members) + 1

    def send_group_message(self, chat_id, text, button_text=None, button_url=None):
        self.sent.append(("group", chat_id, button_url))

    def send_private(self, user_id, text):
        self.sent.append(("dm", user_id, text))
        return True


def at(minutes):
    return T0 + timedelta(minutes=minutes)


def week():
    """A basic group's week: the bot arrives, people come and go, the group migrates."""
    return [
        BotStatusChanged(OLD, P[1], LEFT, ADMIN, at(0), bot=BOT),
        MemberStatusChanged(OLD, P[4], MEMBER, at(5), actor=P[4]),
        MessageSeen(OLD, P[3], at(6)),
        MessageSeen(OLD, P[3], at(7)),
        MemberStatusChanged(OLD, P[5], LEFT, at(12), actor=P[5]),          # leave, no membership
        MemberStatusChanged(OLD, P[5], MEMBER, at(10), actor=P[5]),        # its older join, late
        MemberStatusChanged(OLD, P[4], ADMIN, at(15), actor=P[1]),         # promotion
        DeepLinkStart(P[6], f"join_{OLD.id}", at(16)),
        DeepLinkStart(P[6], f"join_{OLD.id}", at(17)),                      # pressed twice
        ChatMigrated(OLD.id, NEW.id, at(20), NEW.title),
        ChatMigrated(OLD.id, NEW.id, at(20), NEW.title),
        MemberStatusChanged(NEW, P[3], MemberState("kicked"), at(25), actor=P[1]),
        MessageSeen(NEW, P[2], at(26)),
        RosterObserved(NEW, tuple(RosterEntry(P[u], s) for u, s in
                                  {1: MemberState("creator"), 2: ADMIN, 6: MEMBER}.items()),
                       at(30), "member_import", complete=True),
        BotStatusChanged(NEW, P[1], ADMIN, MEMBER, at(35), bot=BOT),       # demoted
        BotStatusChanged(NEW, P[1], MEMBER, ADMIN, at(40), bot=BOT),       # promoted again
    ]


def run(events, before=None, from_event=0):
    """Apply the events as the pipeline does: each one retried until it goes through."""
    store = open_store("memory:")
    faults = FaultyStore(store)
    tg = Telegram()
    engine = Engine(faults, tg, MemoryMemberCache(), bot_id=BOT.id)
    engine.start()
    retries = 0
    for i, ev in enumerate(events):
        if before is not None and i == from_event:
            before(faults)
        while True:
            try:
                engine.handle(ev)
                break
            except StoreUnavailable:
                retries += 1
    while True:
        try:
            engine.flush()
            break
        except StoreUnavailable:
            retries += 1
    return store, tg, faults, retries


def test_a_week_without_faults_is_the_reference():
    store, tg, faults, retries = run(week())
    club = store.club_by_group(NEW.id)
    roster = {m["telegram_id"]: (m["role"], m["status"], m["source"]) for m in club["members"]}
    assert roster == {1: ("organizer", "active", "admin_import"),
                      2: ("organizer", "active", "admin_import"),
                      3: ("member", "kicked", "message_activity"),
                      4: ("member", "left", "chat_member_event"),
                      5: ("member", "left", "chat_member_event"),
                      6: ("member", "active", "manual_registration")}
    assert [s for s in tg.sent if s[0] == "group"] == [("group", OLD.id, f"https://t.me/ayda_bot?start=join_{OLD.id}")]
    assert faults.total_injected == 0 and retries == 0 and faults.calls > 20


def test_any_single_store_failure_during_the_week_converges_to_the_same_store():
    reference, ref_tg, ref_faults, _ = run(week())
    calls = ref_faults.calls - 1  # engine.start()'s read is before
    expected = snapshot(reference)
    for k in range(1, calls + 1):
        store, tg, faults, retries = run(week(), before=lambda f: f.fail_at(k))
        assert faults.total_injected == 1 and retries == 1, k
        assert snapshot(store) == expected, f"failing store call {k} of {calls} changed the outcome"
        assert tg.sent == ref_tg.sent, f"failing store call {k}: the bot posted differently"


def test_any_single_reply_lost_after_the_write_converges_and_the_welcome_is_posted_once():
    """The write reached the store, its answer did not: the event is retried on a store that
    already holds the write. The welcome claim was the worst case (37 of 40 groups lost it)."""
    reference, ref_tg, ref_faults, _ = run(week())
    calls = ref_faults.calls - 1  # every store call after the start (the snapshot below reads more)
    expected = snapshot(reference)
    for k in range(1, calls + 1):
        store, tg, faults, retries = run(week(), before=lambda f: f.lose_reply_at(k))
        assert faults.injected == {"reply_lost_at": 1} and retries == 1, k
        assert snapshot(store) == expected, f"losing the reply of store call {k} of {calls} changed the outcome"
        groups = [s for s in tg.sent if s[0] == "group"]
        assert groups == [s for s in ref_tg.sent if s[0] == "group"], f"reply of call {k} lost: posts differ"
        # a deep link whose registration reply was lost answers "already registered" on retry
        assert [s[:2] for s in tg.sent if s[0] == "dm"] == [s[:2] for s in ref_tg.sent if s[0] == "dm"]


def test_a_lost_reply_to_the_welcome_claim_still_posts_the_welcome():
    store, tg, faults, retries = run(week()[:1], before=lambda f: f.lose_reply_next(1, only={"claim_welcome"}))
    assert faults.injected == {"reply_lost": 1}
    assert [s for s in tg.sent if s[0] == "group"] == [("group", OLD.id, f"https://t.me/ayda_bot?start=join_{OLD.id}")]
    assert store.club_by_group(OLD.id)["sync"]["welcome_posted"] is True


@pytest.mark.parametrize("applied", [0, 1, 3])  # before the first member; after one; after all but one
def test_a_roster_import_whose_bulk_write_fails_halfway_converges_when_retried(applied):
    events = week()[:1] + [RosterObserved(OLD, tuple(RosterEntry(P[u], s) for u, s in
                                                   {3: MEMBER, 4: MEMBER, 5: MEMBER, 1: LEFT}.items()),
                                          at(3), "member_import")]
    reference = snapshot(run(events)[0])

    store3 = open_store("memory:")
    faults3 = FaultyStore(store3)
    engine = Engine(faults3, Telegram(), MemoryMemberCache(), bot_id=BOT.id)
    engine.start()
    engine.handle(events[0])
    faults3.fail_mid_bulk(applied)
    with pytest.raises(StoreUnavailable):
        engine.handle(events[1])
    partial = store3.club_by_group(OLD.id)["members"]
    assert len(partial) == 2  # the listing is one transaction: none of it was written
    engine.handle(events[1])  # the pipeline's retry
    assert faults3.injected["mid_bulk"] == 1
    assert snapshot(store3) == reference
    assert duplicates(store3) == {"members": 0, "accounts": 0}


@pytest.mark.parametrize("applied", [0, 1, 2])
def test_an_account_bulk_write_failing_halfway_leaves_no_second_account(applied):
    events = week()[:1] + [RosterObserved(OLD, tuple(RosterEntry(P[u], MEMBER) for u in (3, 4, 5)),
                                          at(3), "member_import")]
    reference = snapshot(run(events)[0])
    store, _, faults, retries = run(events, before=lambda f: f.fail_mid_bulk(applied),
                                    from_event=1)
    assert faults.injected["mid_bulk"] == 1 and retries == 1
    assert snapshot(store)["clubs"] == reference["clubs"]
    assert [u["telegram_id"] for u in snapshot(store)["users"]] == [1, 2, 3, 4, 5]


def test_an_outage_of_two_seconds_holds_events_in_the_queue_and_loses_none(tmp_path):
    """fail_for with a fake clock: the pipeline's backoff sleeps advance it."""
    clock = [0.0]
    store = open_store("memory:")
    faults = FaultyStore(store, clock=lambda: clock[0])
    engine = Engine(faults, Telegram(), MemoryMemberCache(), bot_id=BOT.id)
    engine.start()
    slept = []

    def sleep(s):
        slept.append(s)
        clock[0] += s

    pipe = Pipeline(engine, spool_path=str(tmp_path / "spool.jsonl"), backoff=(0.25, 1.0), sleep=sleep)
    faults.fail_for(2.0)
    pipe.start()
    for ev in week():
        pipe.submit(ev)
    assert pipe.stop(timeout=30) == 0
    reference, _, _, _ = run(week())
    assert snapshot(store) == snapshot(reference)
    assert faults.injected["outage"] == pipe.retries >= 4
    assert sum(slept) >= 2.0 and max(slept) == 1.0  # backoff grows and is capped
    assert pipe.stats()["applied"] == len(week())


def test_nothing_failing_means_nothing_injected():
    store = open_store("memory:")
    faults = FaultyStore(store).fail_randomly(0.0, seed=1)
    faults.club_by_group(-1)
    assert faults.calls == 1 and faults.total_injected == 0


def test_random_faults_are_reproducible_with_a_seed():
    def pattern(seed):
        store = open_store("memory:")
        faults = FaultyStore(store).fail_randomly(0.3, seed=seed)
        out = []
        for _ in range(50):
            try:
                faults.club_by_group(-1)
                out.append(0)
            except StoreUnavailable:
                out.append(1)
        return out, faults.injected["random"]

    assert pattern(4) == pattern(4)
    assert pattern(4) != pattern(5)
    assert 5 < pattern(4)[1] < 30
