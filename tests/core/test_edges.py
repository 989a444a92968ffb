"""Issue 11: what real groups do that the happy path does not. One story per edge: given a group,
when Telegram does this, the roster (and what the bot sent) shows that."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tgsync_cli.cli import app
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import (BotStatusChanged, ChatMigrated, ChatRef, MemberState,
                                    MemberStatusChanged, Person)
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.core.rules import parse_iso
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.stores import open_store
from tests.worlds import BOT, CHAT, Story
from tests import worlds

OLD, NEW = -1500, -1009999  # a basic group and the supergroup it becomes
T = parse_iso("2025-03-01T08:00:00Z")


def run_with(story: Story, store=None, welcome_dm=False, offline_steps=()):
    """Play the story on the simulator; the steps at `offline_steps` (indexes) are lost updates
    that no restart follows (the bot simply never heard of them)."""
    store = store or open_store("memory:")

    def engine(gw):
        e = Engine(store, gw, MemoryMemberCache(), welcome_dm=welcome_dm)
        e.start()
        return e
    sim = Simulator(story.scenario, engine)
    for i, step in enumerate(story.scenario["timeline"]):
        sim.online = i not in offline_steps
        sim.step(step)
    sim.online = True
    sim.engine.flush()
    return sim, store


def roster(store, chat):
    return worlds.roster(store, chat)


# -- 1. channels are never clubs -----------------------------------------------------------------
def test_a_bot_added_to_a_broadcast_channel_makes_no_club_and_posts_nothing(tmp_path):
    story = Story({1: "creator", 2: "member", 3: "administrator"}, chat_type="channel")
    out = (story.bot_added(as_="administrator").then("join", user=5).then("message", user=3)
           .then("promote_bot").then("reconcile").run(tmp_path))
    assert out.clubs == {}
    assert out.sent == []
    assert out.account(1) is None and out.account(5) is None


# -- 2. a user blocking the bot --------------------------------------------------------------------
def test_blocking_and_unblocking_the_bot_only_flags_the_account(tmp_path):
    out = (Story().bot_added().then("message", user=2).then("block_bot", user=2)
           .run(tmp_path))
    assert set(out.clubs) == {CHAT}  # no club for the private chat
    assert out.account(2)["dm_blocked"] is True
    assert [s for s in out.sent if s["chat"] == 2] == []
    out = (Story().bot_added().then("message", user=2).then("block_bot", user=2)
           .then("unblock_bot", user=2).run(tmp_path))
    assert out.account(2)["dm_blocked"] is False and set(out.clubs) == {CHAT}


def test_a_block_creates_no_account_for_someone_unknown(tmp_path):
    out = Story().bot_added().then("block_bot", user=7).run(tmp_path)
    assert out.account(7) is None and set(out.clubs) == {CHAT}


def test_no_welcome_dm_is_attempted_to_someone_who_blocked_the_bot():
    story = (Story().then("start", user=5).then("start", user=6).bot_added()
             .then("block_bot", user=5).then("message", user=1)
             .then("join", user=5).then("join", user=6))
    sim, store = run_with(story, welcome_dm=True)
    dms = [(s.chat, s.text) for s in sim.gateway.sent if s.chat > 0]
    assert [t for c, t in dms if c == 6][-1].startswith("Welcome to Sunday Long Run")
    assert [c for c, t in dms if t.startswith("Welcome")] == [6]
    # the two /start replies and 6's welcome: Telegram is not even asked about 5
    assert sim.gateway.calls.count("send_private") == 3
    assert roster(store, CHAT)[5] == ("member", "active", "chat_member_event")


# -- 3. a migration the bot missed -------------------------------------------------------------------
def basic_group() -> Story:
    return Story({1: "creator", 2: "member", 3: "member"}, chat_type="group", chat=OLD)


def test_a_missed_migration_is_found_by_the_first_message_from_the_supergroup():
    story = (basic_group().bot_added().then("message", user=2)
             .then("migrate", to=NEW).then("message", chat=NEW, user=3))
    sim, store = run_with(story, offline_steps={2})  # the migration messages were lost
    assert store.club_by_group(OLD)["telegram_group_id"] == NEW  # same club, new id
    assert roster(store, NEW) == {1: ("organizer", "active", "admin_import"),
                                  2: ("member", "active", "message_activity"),
                                  3: ("member", "active", "message_activity")}
    assert len(store.all_clubs()) == 1


def test_an_old_deep_link_after_a_missed_migration_follows_telegrams_answer():
    story = (basic_group().bot_added(as_="member").then("migrate", to=NEW)
             .then("start", user=3, payload=f"join_{OLD}"))
    sim, store = run_with(story, offline_steps={1})
    assert roster(store, NEW)[3] == ("member", "active", "manual_registration")
    assert "Welcome" in [s.text for s in sim.gateway.sent if s.chat == 3][0]
    assert len(store.all_clubs()) == 1


def test_a_bot_status_change_in_the_supergroup_after_a_missed_migration_makes_no_second_club():
    story = (basic_group().bot_added(as_="member").then("migrate", to=NEW)
             .then("promote_bot", chat=NEW))
    sim, store = run_with(story, offline_steps={1})
    [club] = store.all_clubs()
    assert club["telegram_group_id"] == NEW and club["sync"]["bot_is_admin"] is True
    assert len([s for s in sim.gateway.sent if s.chat < 0]) == 1  # one welcome, ever


def test_the_start_up_check_finds_a_migration_missed_during_an_outage(tmp_path):
    out = (basic_group().bot_added().then("bot_offline").then("migrate", to=NEW)
           .then("bot_online").then("post_invite", chat=NEW).run(tmp_path))
    assert set(out.clubs) == {NEW}
    invite = [s for s in out.sent if s["chat"] == NEW]
    assert invite and invite[0]["buttons"] == [f"https://t.me/club_sync_bot?start=join_{NEW}"]


def test_a_migration_into_a_chat_that_already_has_a_club_keeps_both_and_says_so():
    store = open_store("memory:")
    engine = Engine(store, OfflineGateway(), MemoryMemberCache(), bot_id=BOT)
    engine.start()
    for chat in (ChatRef(OLD, "group", "Old"), ChatRef(NEW, "supergroup", "New")):
        engine.handle(BotStatusChanged(chat, None, MemberState("left"), MemberState("member"), T))
    engine.handle(ChatMigrated(OLD, NEW, T))
    assert sorted(d["telegram_group_id"] for d in store.all_clubs()) == [NEW, OLD]
    assert any("already has a club" in n for n in engine.notes)


# -- 4. a demotion the bot missed --------------------------------------------------------------------
def test_after_a_missed_demotion_service_messages_keep_the_roster_right():
    story = (Story(privacy_mode=True).bot_added(as_="administrator").then("demote_bot")
             .then("join", user=5).then("message", user=2).then("leave", user=3))
    sim, store = run_with(story, offline_steps={1})
    assert store.club_by_group(CHAT)["sync"]["bot_is_admin"] is True  # still believed, never told
    r = roster(store, CHAT)
    assert r[5] == ("member", "active", "service_message")
    assert 3 not in r  # never known; the leave left only a departure note


def test_the_start_up_check_learns_of_a_demotion_and_a_removal_missed_while_down(tmp_path):
    story = Story()
    story.scenario["chats"].append({"id": -1002600, "type": "supergroup", "title": "Trail Crew",
                                    "members": [{"user": 6, "status": "creator"}]})
    out = (story.bot_added(as_="administrator").then("add_bot", chat=-1002600, by=6, as_="administrator")
           .then("bot_offline").then("demote_bot").then("remove_bot", chat=-1002600)
           .then("restart_bot").then("bot_online").run(tmp_path))
    assert out.club(CHAT)["sync"]["bot_is_admin"] is False
    assert out.club(CHAT)["sync"]["bot_present"] is True
    assert out.club(-1002600)["sync"]["bot_present"] is False
    assert out.member(6, chat=-1002600) == ("organizer", "active", "admin_import")  # kept


def test_an_admin_bot_hears_each_join_twice_and_records_it_once(tmp_path):
    out = Story().bot_added().then("join", user=5).then("kick", user=5, by=1).run(tmp_path)
    assert out.member(5) == ("member", "kicked", "chat_member_event")


# -- 5. a bot that was already in the group ----------------------------------------------------------
def test_a_promotion_as_the_first_event_creates_the_club_with_its_organizers(tmp_path):
    out = (Story({1: "creator", 2: "administrator", 3: "member", BOT: "member"})
           .then("promote_bot").run(tmp_path))
    assert out.roster() == {1: ("organizer", "active", "admin_import"),
                            2: ("organizer", "active", "admin_import")}
    assert len([s for s in out.sent if s["chat"] == CHAT]) == 1


def test_a_demotion_as_the_first_event_also_imports_the_admins(tmp_path):
    out = (Story({1: "creator", 3: "member", BOT: "administrator"})
           .then("demote_bot").run(tmp_path))
    assert out.roster() == {1: ("organizer", "active", "admin_import")}


# -- 7. @username ---------------------------------------------------------------------------------------
def test_roster_and_reconcile_find_a_public_group_by_its_username(tmp_path):
    story = Story()
    story.scenario["chats"][0]["username"] = "SundayLongRun"
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    story.bot_added().then("message", user=2).run(tmp_path, store=store)
    store.close()
    for name in ("@SundayLongRun", "@sundaylongrun"):
        res = CliRunner().invoke(app, ["roster", name, "--json", "--store", uri])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["telegram_group_id"] == CHAT
    res = CliRunner().invoke(app, ["roster", "@nobody", "--json", "--store", uri])
    assert res.exit_code == 1


# -- 8. the simulator delivers only what Telegram would ------------------------------------------------
def test_no_message_from_someone_not_in_the_group_is_delivered(tmp_path):
    out = (Story({1: "creator", 2: "member", 3: "member"}).bot_added()
           .then("message", user=2).then("leave", user=2).then("message", user=2)
           .then("kick", user=3, by=1).then("message", user=3)
           .then("message", user=7).run(tmp_path))
    assert out.member(2) == ("member", "left", "message_activity")
    assert out.member(3) is None and out.member(7) is None


def test_a_privacy_mode_bot_that_is_not_admin_hears_only_what_names_it(tmp_path):
    out = (Story({1: "creator", 2: "member", 3: "member", 4: "member", 5: "member", 6: "member"},
                 privacy_mode=True).bot_added(as_="member")
           .then("message", user=2, text="hey @club_sync_bot, who runs Sunday?")
           .then("message", user=3, text="/help")
           .then("message", user=4, text="/help@club_sync_bot")
           .then("message", user=5, text="thanks!", reply_to_bot=True)
           .then("message", user=6, text="/help@some_other_bot").run(tmp_path))
    assert out.member(2) is None and out.member(3) is None and out.member(6) is None
    assert out.member(4) == ("member", "active", "message_activity")
    assert out.member(5) == ("member", "active", "message_activity")


def test_a_join_through_an_invite_link_records_the_link_and_its_creator(tmp_path):
    out = (Story({1: "creator", 2: "administrator"}).bot_added()
           .then("join", user=5, link="spring-flyer", link_by=2).then("join", user=6).run(tmp_path))
    members = {m["telegram_id"]: m for m in out.store.club_by_group(CHAT)["members"]}
    assert (members[5]["invite_link"], members[5]["invited_by"]) == ("spring-flyer", 2)
    assert "invite_link" not in members[6]


def test_the_service_message_echoing_an_applied_member_event_costs_no_store_call():
    store = open_store("memory:")
    engine = Engine(store, OfflineGateway(), MemoryMemberCache(), bot_id=BOT)
    engine.start()
    chat = ChatRef(CHAT, "supergroup", "Sunday Long Run")
    engine.handle(BotStatusChanged(chat, None, MemberState("left"), MemberState("administrator"), T))
    ivan = Person(5, first_name="Ivan")
    for status, via in (("member", "chat_member_event"), ("member", "service_message"),
                        ("left", "chat_member_event"), ("left", "service_message")):
        before = store.ops
        engine.handle(MemberStatusChanged(chat, ivan, MemberState(status), T, via=via))
        assert (store.ops == before) == (via == "service_message")
    assert roster(store, CHAT)[5] == ("member", "left", "chat_member_event")
