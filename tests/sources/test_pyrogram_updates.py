"""Stories: raw MTProto updates, as the server sends them, through pyrogram's own parsers, into events."""

from __future__ import annotations

from datetime import datetime

import pytest
from pyrogram import raw, types

from tgsync_cli.core.events import (BotStatusChanged, ChatMigrated, ChatRef, DeepLinkStart, MemberState,
                               MemberStatusChanged, MessageSeen, Person)
from tgsync_cli.core.rules import is_person
from tgsync_cli.sources.pyrogram_updates import (events_from_chat_member_updated, events_from_message,
                                         person_from_user, state_from_member)

AT = datetime(2024, 12, 1, 10, 0, 0)  # T0 as naive UTC
SG = ChatRef(id=-1000000001006, type="supergroup", title="SRG Almaty", username="srg_almaty")
AIDA = Person(id=1, first_name="Aida", username="aida")
IVAN = Person(id=2, first_name="Ivan", language_code="ru")
BOT = Person(id=9000, is_bot=True, first_name="Ayda Run", username="aydarun_bot")
P = raw.types


@pytest.fixture
def world(tl, client):
    users = {u.id: u for u in (
        tl.user(1, "Aida", "aida"), tl.user(2, "Ivan", lang="ru"),
        tl.user(9000, "Ayda Run", "aydarun_bot", bot=True, is_self=True),
        tl.user(9100, "Other", "other_bot", bot=True), tl.user(777000, "Telegram"),
        tl.user(1087968824, "Group", "GroupAnonymousBot", bot=True))}
    chats = {c.id: c for c in (tl.supergroup(1006, "SRG Almaty", "srg_almaty"),
                               tl.broadcast(2002, "SRG News"), tl.basic_group(55, "SRG old"))}

    class World:
        def member(self, user_id, actor_id, prev=None, new=None, date=tl.T0, channel=1006):
            upd = P.UpdateChannelParticipant(channel_id=channel, date=date, actor_id=actor_id,
                                             user_id=user_id, qts=1, prev_participant=prev,
                                             new_participant=new)
            parsed = tl.run(types.ChatMemberUpdated._parse(client, tl.wire(upd), users, chats))
            return events_from_chat_member_updated(parsed, tl.BOT_ID)

        def basic_member(self, user_id, actor_id, prev=None, new=None):
            upd = P.UpdateChatParticipant(chat_id=55, date=tl.T0, actor_id=actor_id, user_id=user_id,
                                          qts=1, prev_participant=prev, new_participant=new)
            parsed = tl.run(types.ChatMemberUpdated._parse(client, tl.wire(upd), users, chats))
            return events_from_chat_member_updated(parsed, tl.BOT_ID)

        def parse(self, msg):
            return tl.run(types.Message._parse(client, tl.wire(msg), users, chats))

        def message(self, msg):
            return events_from_message(self.parse(msg), tl.BOT_ID)

        def service(self, action, from_id=P.PeerUser(user_id=1), peer=P.PeerChannel(channel_id=1006)):
            return self.message(P.MessageService(id=7, peer_id=peer, from_id=from_id, date=tl.T0,
                                                 action=action))
    return World()


def banned(user_id, left, view_messages=True):
    return P.ChannelParticipantBanned(peer=P.PeerUser(user_id=user_id), kicked_by=1, date=T0_,
                                      left=left or None, banned_rights=P.ChatBannedRights(
                                          until_date=0, view_messages=view_messages or None,
                                          send_messages=True))


T0_ = 1733047200
ADMIN_RIGHTS = P.ChatAdminRights(delete_messages=True, ban_users=True, invite_users=True)


# -- member events (route 3) -------------------------------------------------------------------
def test_given_a_supergroup_when_ivan_joins_the_adapter_yields_member_at_the_updates_time(world):
    events = world.member(2, 2, new=P.ChannelParticipant(user_id=2, date=T0_))
    assert events == [MemberStatusChanged(chat=SG, user=IVAN, new=MemberState("member"), at=AT,
                                          actor=IVAN, old=MemberState("left"),
                                          via="chat_member_event")]


def test_when_aida_bans_ivan_he_is_kicked_by_her(world):
    [e] = world.member(2, 1, prev=P.ChannelParticipant(user_id=2, date=T0_), new=banned(2, left=True))
    assert (e.new, e.old, e.actor, e.user) == (MemberState("kicked"), MemberState("member"), AIDA, IVAN)


def test_when_ivan_leaves_the_missing_new_participant_means_left(world):
    [e] = world.member(2, 2, prev=P.ChannelParticipant(user_id=2, date=T0_))
    assert e.new == MemberState("left") and e.old == MemberState("member")


@pytest.mark.parametrize("left, is_member", [(False, True), (True, False)])
def test_restricted_carries_is_member(world, left, is_member):
    [e] = world.member(2, 1, new=banned(2, left=left, view_messages=False))
    assert e.new == MemberState("restricted", is_member=is_member)


def test_promotion_and_ownership_map_to_bot_api_names(world):
    [e] = world.member(2, 1, prev=P.ChannelParticipant(user_id=2, date=T0_),
                       new=P.ChannelParticipantAdmin(user_id=2, promoted_by=1, date=T0_,
                                                     admin_rights=ADMIN_RIGHTS))
    assert e.new == MemberState("administrator")
    [e] = world.member(1, 1, new=P.ChannelParticipantCreator(user_id=1, admin_rights=ADMIN_RIGHTS))
    assert e.new == MemberState("creator") and e.user == AIDA


def test_when_aida_adds_the_bot_as_admin_it_is_a_bot_status_change(world):
    [e] = world.member(9000, 1, new=P.ChannelParticipantAdmin(user_id=9000, promoted_by=1, date=T0_,
                                                              admin_rights=ADMIN_RIGHTS))
    assert e == BotStatusChanged(chat=SG, actor=AIDA, old=MemberState("left"),
                                 new=MemberState("administrator"), at=AT, bot=BOT,
                                 can_invite_users=True)


def test_when_the_bot_is_removed_it_is_a_bot_status_change_to_kicked(world):
    [e] = world.member(9000, 1, prev=P.ChannelParticipant(user_id=9000, date=T0_),
                       new=banned(9000, left=True))
    assert isinstance(e, BotStatusChanged) and e.new == MemberState("kicked")


def test_in_a_basic_group_the_bot_added_as_member(world):
    [e] = world.basic_member(9000, 1, new=P.ChatParticipant(user_id=9000, inviter_id=1, date=T0_))
    assert e == BotStatusChanged(chat=ChatRef(id=-55, type="group", title="SRG old"), actor=AIDA,
                                 old=MemberState("left"), new=MemberState("member"), at=AT, bot=BOT)


def test_a_banned_channel_peer_is_no_person(world):
    new = P.ChannelParticipantBanned(peer=P.PeerChannel(channel_id=2002), kicked_by=1, date=T0_,
                                     banned_rights=P.ChatBannedRights(until_date=0, view_messages=True))
    assert world.member(2002, 1, new=new) == []


# -- service messages (route 5) ------------------------------------------------------------------
def test_when_aida_adds_ivan_and_two_bots_only_ivan_becomes_a_service_join(world):
    events = world.service(P.MessageActionChatAddUser(users=[2, 9000, 9100]))
    assert events == [MemberStatusChanged(chat=SG, user=IVAN, new=MemberState("member"), at=AT,
                                          actor=AIDA, via="service_message")]


def test_ivan_joining_by_link_is_a_service_join(world):
    [e] = world.service(P.MessageActionChatJoinedByLink(inviter_id=1), from_id=P.PeerUser(user_id=2))
    assert (e.user, e.new, e.via) == (IVAN, MemberState("member"), "service_message")


def test_ivan_leaving_by_himself_is_left(world):
    [e] = world.service(P.MessageActionChatDeleteUser(user_id=2), from_id=P.PeerUser(user_id=2))
    assert (e.user, e.new, e.actor) == (IVAN, MemberState("left"), IVAN)


def test_ivan_removed_by_aida_is_kicked(world):
    [e] = world.service(P.MessageActionChatDeleteUser(user_id=2))
    assert (e.user, e.new, e.actor) == (IVAN, MemberState("kicked"), AIDA)


def test_the_bot_leaving_is_left_to_the_member_update(world):
    assert world.service(P.MessageActionChatDeleteUser(user_id=9000)) == []


def test_other_service_messages_prove_nothing(world):
    assert world.service(P.MessageActionChatEditTitle(title="New")) == []


def test_basic_group_migrating_to_a_supergroup_both_sides_name_the_same_pair(world):
    old_side = world.service(P.MessageActionChatMigrateTo(channel_id=1006),
                             peer=P.PeerChat(chat_id=55))
    new_side = world.service(P.MessageActionChannelMigrateFrom(title="SRG old", chat_id=55))
    assert old_side == [ChatMigrated(-55, -1000000001006, AT, "SRG old")]
    assert new_side == [ChatMigrated(-55, -1000000001006, AT, "SRG Almaty")]


# -- messages (route 4) and deep links (route 2) ---------------------------------------------------
def msg(from_id=None, peer=P.PeerChannel(channel_id=1006), text="hi", **kw):
    return P.Message(id=5, peer_id=peer, from_id=from_id, date=T0_, message=text, **kw)


def test_ivan_writing_in_the_group_is_message_activity(world):
    assert world.message(msg(P.PeerUser(user_id=2))) == [
        MessageSeen(chat=SG, sender=IVAN, at=AT, sender_chat_id=None, text="hi")]


@pytest.mark.parametrize("from_id", [None, P.PeerChannel(channel_id=1006)],
                         ids=["no-from-id", "from-the-group"])
def test_an_anonymous_admin_has_no_sender_and_the_group_as_sender_chat(world, from_id):
    [e] = world.message(msg(from_id, post_author="Boss"))
    assert e.sender is None and e.sender_chat_id == SG.id


def test_a_message_as_the_group_anonymous_bot_user_is_no_person(world):
    [e] = world.message(msg(P.PeerUser(user_id=1087968824)))
    assert e.sender.id == 1087968824 and not is_person(e.sender, 9000)


def test_a_message_sent_as_a_channel_carries_the_channel_as_sender_chat(world):
    [e] = world.message(msg(P.PeerChannel(channel_id=2002)))
    assert (e.sender, e.sender_chat_id, e.is_automatic_forward) == (None, -1000000002002, False)


def test_an_automatic_forward_from_the_linked_channel_is_flagged(world):
    fwd = P.MessageFwdHeader(date=T0_, from_id=P.PeerChannel(channel_id=2002), channel_post=10,
                             saved_from_peer=P.PeerChannel(channel_id=2002), saved_from_msg_id=10)
    [e] = world.message(msg(P.PeerChannel(channel_id=2002), fwd_from=fwd))
    assert (e.sender, e.sender_chat_id, e.is_automatic_forward) == (None, -1000000002002, True)


def test_an_automatic_forward_shown_as_telegram_777000_is_no_person(world):
    fwd = P.MessageFwdHeader(date=T0_, from_id=P.PeerChannel(channel_id=2002), channel_post=10,
                             saved_from_peer=P.PeerChannel(channel_id=2002), saved_from_msg_id=10)
    [e] = world.message(msg(P.PeerUser(user_id=777000), fwd_from=fwd))
    assert e.is_automatic_forward and e.sender.id == 777000 and not is_person(e.sender, 9000)


@pytest.mark.parametrize("text, payload", [("/start join_-1001006", "join_-1001006"),
                                           ("/start", None), ("/start@aydarun_bot join_5", "join_5")])
def test_a_private_start_is_a_deep_link(world, text, payload):
    events = world.message(msg(None, peer=P.PeerUser(user_id=2), text=text))
    assert events == [DeepLinkStart(user=IVAN, payload=payload, at=AT)]


def test_other_private_messages_prove_nothing(world):
    assert world.message(msg(None, peer=P.PeerUser(user_id=2), text="hello")) == []


# -- time and plain mappings ---------------------------------------------------------------------
def test_times_are_utc_whatever_the_machines_zone(world, almaty_tz):
    parsed = world.parse(msg(P.PeerUser(user_id=2)))
    assert parsed.date == datetime(2024, 12, 1, 15, 0)  # pyrogram: naive LOCAL time
    [e] = events_from_message(parsed, 9000)
    assert e.at == AT
    [e] = world.member(2, 2, new=P.ChannelParticipant(user_id=2, date=T0_), date=T0_ + 61)
    assert e.at == datetime(2024, 12, 1, 10, 1, 1)


def test_person_and_state_helpers(tl, client):
    u = tl.run(types.User._parse(client, tl.user(2, "Ivan", "ivan", lang="ru")))
    assert person_from_user(u) == Person(id=2, first_name="Ivan", username="ivan", language_code="ru")
    assert state_from_member(None) == MemberState("left")


# -- issue 11: channels on the live path, /start variants ----------------------------------------
def test_a_bot_made_admin_of_a_broadcast_channel_creates_no_club(world, store):
    from tgsync_cli.core.cache import MemoryMemberCache
    from tgsync_cli.core.engine import Engine
    from tgsync_cli.core.gateway import OfflineGateway

    [e] = world.member(9000, 1, channel=2002, new=P.ChannelParticipantAdmin(
        user_id=9000, promoted_by=1, date=T0_, admin_rights=ADMIN_RIGHTS))
    assert isinstance(e, BotStatusChanged) and e.chat.type == "channel"
    [join] = world.member(2, 2, channel=2002, new=P.ChannelParticipant(user_id=2, date=T0_))
    engine = Engine(store, OfflineGateway(9000, "aydarun_bot"), MemoryMemberCache(), bot_id=9000)
    engine.start()
    engine.handle(e)
    engine.handle(join)
    assert store.all_clubs() == [] and store.user_by_telegram_id(1) is None


@pytest.mark.parametrize("text, payload", [("/START", None), ("/start join_-1001006 extra", "join_-1001006 extra")])
def test_start_in_any_case_and_with_extra_words_is_still_a_start(world, text, payload):
    events = world.message(msg(None, peer=P.PeerUser(user_id=2), text=text))
    assert events == [DeepLinkStart(user=IVAN, payload=payload, at=AT)]
