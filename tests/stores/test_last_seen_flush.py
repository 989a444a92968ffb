"""last_seen: kept in memory, written by a flush (the pipeline's timer and its shutdown), true
afterwards and never moved backwards by a late message or a racing writer."""

from datetime import datetime, timedelta

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

CHATS = [ChatRef(-100701, "supergroup", "Intervals"), ChatRef(-100702, "supergroup", "Trails")]
T0 = datetime(2025, 8, 1, 6, 0)
PEOPLE = [Person(700 + i, first_name=f"r{i}") for i in range(6)]


def club_with_members(store):
    e = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    e.start()
    for chat in CHATS:
        e.handle(BotStatusChanged(chat, None, MemberState("left"), MemberState("member"), T0))
        for p in PEOPLE:
            e.handle(MemberStatusChanged(chat, p, MemberState("member"), T0))
    return e


def last_seen(store, chat, person):
    doc = store.club_by_group(chat.id)
    return next(m["last_seen"] for m in doc["members"] if m["telegram_id"] == person.id)


def test_messages_cost_no_write_until_the_flush_and_then_the_roster_is_true(file_store):
    e = club_with_members(file_store)
    ops = file_store.ops
    for i, p in enumerate(PEOPLE):
        e.handle(MessageSeen(CHATS[0], p, T0 + timedelta(minutes=10 + i)))
        e.handle(MessageSeen(CHATS[1], p, T0 + timedelta(minutes=30 + i)))
    assert file_store.ops == ops and last_seen(file_store, CHATS[0], PEOPLE[0]) is None
    ops = file_store.ops
    e.flush()
    assert file_store.ops - ops == 1  # one bulk write, not one call per member
    for i, p in enumerate(PEOPLE):
        assert last_seen(file_store, CHATS[0], p) == T0 + timedelta(minutes=10 + i)
        assert last_seen(file_store, CHATS[1], p) == T0 + timedelta(minutes=30 + i)


def test_a_late_message_never_moves_last_seen_backwards(file_store):
    e = club_with_members(file_store)
    e.handle(MessageSeen(CHATS[0], PEOPLE[0], T0 + timedelta(hours=2)))
    e.flush()
    e.handle(MessageSeen(CHATS[0], PEOPLE[0], T0 + timedelta(hours=1)))  # delivered late
    e.flush()
    assert last_seen(file_store, CHATS[0], PEOPLE[0]) == T0 + timedelta(hours=2)


def test_a_forget_between_the_messages_and_the_flush_is_not_undone_by_it(file_store):
    """Another process erases a writer before this one flushes: the flush writes everyone else's
    last_seen and brings nobody back."""
    e = club_with_members(file_store)
    for p in PEOPLE:
        e.handle(MessageSeen(CHATS[0], p, T0 + timedelta(minutes=5)))
    other = open_store(file_store.uri_label)
    other.forget(PEOPLE[0].id)
    other.close()
    e.flush()
    doc = file_store.club_by_group(CHATS[0].id)
    assert PEOPLE[0].id not in {m["telegram_id"] for m in doc["members"]}
    assert file_store.user_by_telegram_id(PEOPLE[0].id) is None
    for p in PEOPLE[1:]:
        assert last_seen(file_store, CHATS[0], p) == T0 + timedelta(minutes=5)


def member_doc(store, chat, person):
    doc = store.club_by_group(chat.id)
    return next(m for m in doc["members"] if m["telegram_id"] == person.id)


def test_a_late_leave_after_many_flushes_finds_the_first_message_after_it(file_store):
    """A runner writes every few minutes, each message flushed on its own (more of them than the
    store keeps); their leave, dated between the second and third, arrives after all of them: the
    messages after it prove them back, active since the third, not since the newest."""
    late_leave_after_many_flushes(file_store)


def late_leave_after_many_flushes(store):
    e = club_with_members(store)
    runner = PEOPLE[0]
    for i in range(10):
        e.handle(MessageSeen(CHATS[0], runner, T0 + timedelta(minutes=10 * (i + 1))))
        e.flush()
    e.handle(MemberStatusChanged(CHATS[0], runner, MemberState("left"), T0 + timedelta(minutes=25)))
    m = member_doc(store, CHATS[0], runner)
    assert (m["status"], m["status_at"], m["last_seen"]) == (
        "active", T0 + timedelta(minutes=30), T0 + timedelta(minutes=100))


def test_the_pipeline_flushes_at_shutdown(file_store):
    e = club_with_members(file_store)
    pipeline = Pipeline(e, flush_seconds=3600)
    pipeline.start()
    pipeline.submit(MessageSeen(CHATS[1], PEOPLE[3], T0 + timedelta(hours=3)))
    pipeline.stop()
    assert last_seen(file_store, CHATS[1], PEOPLE[3]) == T0 + timedelta(hours=3)
