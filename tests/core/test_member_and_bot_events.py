"""Member and bot-status events where another process, a restart or a late delivery is involved:
the role a join notice cannot know, the admins a newly promoted bot can finally see, and a stale
bot status that must not overwrite what the engine holds in memory."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests import worlds
from tests.worlds import CHAT, Story, engine_with_club
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState, MemberStatusChanged, Person
from tgsync_cli.stores import open_store

GROUP = ChatRef(CHAT, "supergroup", "Sunday Long Run")
T0 = datetime(2025, 3, 1, 7, 0)


def test_someone_added_straight_in_as_admin_stays_an_organizer_when_another_process_applies_the_join_notice():
    """The "joined" service message says nothing of the role; the process that applies it (not
    the one that saw the member event, or the same one after a restart) leaves the role alone."""
    store = open_store("memory:")
    serve = engine_with_club(store, GROUP, T0)
    other = engine_with_club(store, GROUP, T0)  # another process, or this one restarted
    dana = Person(5, first_name="Dana")
    at = T0 + timedelta(minutes=1)

    serve.handle(MemberStatusChanged(GROUP, dana, MemberState("administrator"), at, actor=Person(1)))
    other.handle(MemberStatusChanged(GROUP, dana, MemberState("member"), at, via="service_message"))

    assert worlds.roster(store, CHAT)[5] == ("organizer", "active", "chat_member_event")


def test_promoting_a_member_bot_to_admin_imports_the_admins_made_while_it_could_not_see(tmp_path):
    """A bot that is only a member hears no member events: Cyrus's promotion passes unseen.
    When the bot is made admin, its club's admins are imported again: Cyrus is an organizer."""
    out = (Story({1: "creator", 2: "member", 3: "member"})
           .bot_added(as_="member")
           .then("promote", user=3)
           .then("promote_bot", by=1)
           .run(tmp_path))
    assert out.member(3) == ("organizer", "active", "admin_import")


def test_a_stale_bot_status_does_not_overwrite_what_the_engine_holds(tmp_path):
    """The bot was made admin at 7:05; a "member" status from 7:02 arrives late. The store keeps
    the newer status, and so does the running engine (which decides routes by it)."""
    store = open_store("memory:")
    engine = engine_with_club(store, GROUP, T0)
    engine.handle(BotStatusChanged(GROUP, None, MemberState("member"), MemberState("administrator"),
                                   T0 + timedelta(minutes=5)))
    engine.handle(BotStatusChanged(GROUP, None, MemberState("left"), MemberState("member"),
                                   T0 + timedelta(minutes=2)))

    sync = store.club_by_group(CHAT)["sync"]
    info = engine.club(CHAT)
    assert (sync["bot_is_admin"], sync["bot_present"]) == (True, True)
    assert (info.bot_is_admin, info.bot_present) == (True, True)


def test_no_welcome_dm_to_someone_another_process_saw_block_the_bot():
    """The block reached another process (the store has it, this one's memory does not): the
    welcome DM is not attempted. Someone who did not block gets the welcome, word for word."""
    from tgsync_cli.core.cache import MemoryMemberCache
    from tgsync_cli.core.engine import Engine
    from tgsync_cli.core.gateway import OfflineGateway

    store = open_store("memory:")
    trails = ChatRef(-1009009, "supergroup", "Trail Crew")
    other = engine_with_club(store, trails, T0)  # another club, another process
    other.handle(MemberStatusChanged(trails, Person(5, first_name="Erlan"), MemberState("member"), T0))
    other.handle(BotStatusChanged(ChatRef(5, "private", None), None, MemberState("member"),
                                  MemberState("kicked"), T0 + timedelta(minutes=1)))  # 5 blocks the bot
    engine_with_club(store, GROUP, T0)
    gateway = OfflineGateway(9000)
    sent = []
    gateway.send_private = lambda chat, text: sent.append((chat, text))  # type: ignore[method-assign]
    serve = Engine(store, gateway, MemoryMemberCache(), bot_id=9000, welcome_dm=True)
    serve.start()

    for uid in (5, 6):  # both new to this club
        serve.handle(MemberStatusChanged(GROUP, Person(uid, first_name="R"), MemberState("member"),
                                         T0 + timedelta(minutes=3)))

    assert sent == [(6, "Welcome to Sunday Long Run on Ayda Run!")]
    assert worlds.roster(store, CHAT)[5] == ("member", "active", "chat_member_event")


def test_a_kick_names_the_admin_who_did_it_in_the_log():
    store = open_store("memory:")
    engine = engine_with_club(store, GROUP, T0)
    runner, admin = Person(5, first_name="Erlan"), Person(1, first_name="Asel")
    engine.handle(MemberStatusChanged(GROUP, runner, MemberState("member"), T0 + timedelta(minutes=1)))
    engine.handle(MemberStatusChanged(GROUP, runner, MemberState("kicked"), T0 + timedelta(minutes=2),
                                      actor=admin))
    log = store.membership_log(telegram_id=5)
    assert [(e["to"]["status"], e["actor"]) for e in log] == [("active", None), ("kicked", 1)]


def test_a_late_leave_does_not_undo_a_message_the_hot_path_holds_unflushed():
    """Erlan wrote at 7:05 (a known member: the message waits for the flush, in memory); a leave
    from 7:03 arrives late. He stays active, before and after the flush."""
    from tgsync_cli.core.events import MessageSeen

    store = open_store("memory:")
    engine = engine_with_club(store, GROUP, T0)
    erlan = Person(5, first_name="Erlan")
    engine.handle(MemberStatusChanged(GROUP, erlan, MemberState("member"), T0 + timedelta(minutes=1)))
    engine.handle(MessageSeen(GROUP, erlan, T0 + timedelta(minutes=5)))
    engine.handle(MemberStatusChanged(GROUP, erlan, MemberState("left"), T0 + timedelta(minutes=3)))
    assert worlds.roster(store, CHAT)[5][1] == "active"
    engine.flush()
    assert worlds.roster(store, CHAT)[5][1] == "active"


def test_another_bot_joining_the_group_is_no_member():
    store = open_store("memory:")
    engine = engine_with_club(store, GROUP, T0)
    engine.handle(MemberStatusChanged(GROUP, Person(7001, is_bot=True, first_name="Helper"),
                                      MemberState("member"), T0 + timedelta(minutes=1)))
    assert worlds.roster(store, CHAT) == {} and store.user_by_telegram_id(7001) is None
