"""No negative answer outlives another process's write: a chat that had no club a moment ago is
asked of the store again, so a club another process just created is found at once."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

BOT = 9000
CHAT = ChatRef(-1004242, "supergroup", "New Club")
T = datetime(2025, 6, 1, 8)


def engine(uri):
    e = Engine(open_store(uri), OfflineGateway(BOT), MemoryMemberCache(), bot_id=BOT)
    e.start()
    return e


def bot_added(at):
    return BotStatusChanged(CHAT, Person(1, first_name="Asel"), MemberState("left"),
                            MemberState("administrator"), at, Person(BOT, True, "bot"))


def members(e):
    return {m["telegram_id"]: m["status"] for m in e.store.club_by_group(CHAT.id)["members"]}


def test_a_club_created_by_another_process_is_found_by_the_next_event(tmp_path):
    uri = f"file:{tmp_path}/store"
    a, b = engine(uri), engine(uri)
    b.handle(MessageSeen(CHAT, Person(5, first_name="Early"), T))  # no club yet: nothing to do
    a.handle(bot_added(T + timedelta(seconds=1)))                 # process A creates the club
    b.handle(MessageSeen(CHAT, Person(6, first_name="Dana"), T + timedelta(seconds=2)))
    b.handle(MemberStatusChanged(CHAT, Person(7, first_name="Ilya"), MemberState("member"),
                                 T + timedelta(seconds=3), old=MemberState("left")))
    assert members(a) == {6: "active", 7: "active"}


def test_an_event_that_came_before_the_club_was_written_waits_for_it(tmp_path):
    """B applies the message after "bot added" a moment before A has written the club."""
    uri = f"file:{tmp_path}/store"
    a, b = engine(uri), engine(uri)
    pipe = Pipeline(b, backoff=(0.01, 0.01))
    pipe.start()
    pipe.submit(MessageSeen(CHAT, Person(6, first_name="Dana"), T + timedelta(seconds=2)))
    while pipe.backlog():
        pass
    assert a.store.club_by_group(CHAT.id) is None
    assert pipe.stats()["waiting_for_club"] == 1
    a.handle(bot_added(T + timedelta(seconds=1)))  # written now, by the other process
    deadline = time.monotonic() + 10
    while pipe.stats()["waiting_for_club"] and time.monotonic() < deadline:
        time.sleep(0.05)
    while pipe.backlog():
        time.sleep(0.01)
    pipe.stop(timeout=10)
    assert members(a) == {6: "active"}
    assert pipe.gave_up == 0
