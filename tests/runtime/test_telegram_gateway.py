"""The gateway against a Client whose `invoke` answers with raw TL results: no network anywhere."""

from __future__ import annotations

import inspect
import logging
import os
import stat

import pytest
from pyrogram import errors, raw

from tgsync_cli.core.errors import (AdminRequired, BotNotInChat, ConfigError, PeerUnknown, TelegramError,
                               TelegramUnavailable)
from tgsync_cli.core.events import MemberState, Person
from tgsync_cli.core.gateway import BotIdentity, TelegramGateway
from tgsync_cli.runtime.telegram_client import bot_id_from_token, check_credentials, make_client
from tgsync_cli.runtime.telegram_gateway import BackgroundLoop, PyrogramGateway

P = raw.types
SG = -1000000001006
T0 = 1733047200
RIGHTS = P.ChatAdminRights(delete_messages=True, ban_users=True, invite_users=True)


class FakeTelegram:
    """Stands in for `Client.invoke`: records every query, answers from per-function handlers."""

    def __init__(self, tl):
        self.tl, self.calls, self.handlers = tl, [], {}

    def on(self, name, handler):
        self.handlers[name] = handler

    async def invoke(self, query, *args, **kwargs):
        self.calls.append(query)
        name = type(query).__name__
        if name not in self.handlers:
            raise AssertionError(f"unexpected call {name}")
        answer = self.handlers[name](query)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, list):
            return [self.tl.wire(a) for a in answer]
        return self.tl.wire(answer)

    def named(self, name):
        return [q for q in self.calls if type(q).__name__ == name]


@pytest.fixture
def bg():
    with BackgroundLoop() as loop:
        yield loop


@pytest.fixture
def rig(tl, bg):
    client = tl.offline_client(loop=bg.loop)
    bg.run(client.storage.open())
    client.is_connected = True  # never started: nothing below may reach a socket
    people = [tl.user(i, f"User{i}") for i in range(1, 4)] + [tl.user(9000, "Bot", "aydarun_bot",
                                                                      bot=True, is_self=True)]
    bg.run(client.fetch_peers(people + [tl.supergroup(1006, "SRG Almaty"), tl.basic_group(55, "Old")]))
    fake = FakeTelegram(tl)
    client.invoke = fake.invoke
    sleeps = []

    class Rig:
        pass
    rig = Rig()
    rig.client, rig.fake, rig.sleeps, rig.tl = client, fake, sleeps, tl
    rig.gw = PyrogramGateway(client, bg.loop, max_flood_wait=60, sleep=sleeps.append)
    yield rig
    bg.run(client.storage.close())


def participants(tl, first_id, n, total):
    users = [tl.user(i, f"M{i}") for i in range(first_id, first_id + n)]
    return P.channels.ChannelParticipants(
        count=total, participants=[P.ChannelParticipant(user_id=u.id, date=T0) for u in users],
        chats=[], users=users)


def test_it_satisfies_the_core_protocol(rig):
    """Every call the engine may make exists with the protocol's parameters (a renamed or missing
    argument would only show on the first live Telegram call of that kind)."""
    gw: TelegramGateway = rig.gw
    wanted = [n for n, v in vars(TelegramGateway).items() if callable(v) and not n.startswith("_")]
    assert len(wanted) == 12  # the join-request and removal calls included
    for name in wanted:
        want = list(inspect.signature(getattr(TelegramGateway, name)).parameters)[1:]  # minus self
        assert list(inspect.signature(getattr(gw, name)).parameters) == want, name
    assert "token" not in repr(gw).lower()


def test_paging_returns_every_member_across_pages_and_waits_out_one_flood(rig, caplog):
    total, flooded = 450, []

    def page(q):
        if q.offset == 200 and not flooded:
            flooded.append(True)
            return errors.FloodWait(value=2)
        n = max(0, min(q.limit, total - q.offset))
        return participants(rig.tl, 100000 + q.offset, n, total)
    rig.fake.on("GetParticipants", page)
    with caplog.at_level(logging.WARNING, logger="tgsync.telegram"):
        pages = list(rig.gw.iter_member_pages(SG))
    ids = [m.person.id for p in pages for m in p]
    assert [len(p) for p in pages] == [200, 200, 50]
    assert sorted(ids) == list(range(100000, 100450)) and len(set(ids)) == 450
    assert [q.offset for q in rig.fake.named("GetParticipants")] == [0, 200, 200, 400, 450]
    assert all(q.limit == 200 for q in rig.fake.named("GetParticipants"))
    assert rig.sleeps == [2]
    assert "flood wait" in caplog.text and "2 s" in caplog.text
    assert pages[0][0].state == MemberState("member")


def test_a_flood_wait_over_the_cap_is_an_operator_error_not_a_sleep(rig):
    rig.fake.on("GetParticipants", lambda q: errors.FloodWait(value=3600))
    with pytest.raises(TelegramError, match="3600 s.*max_flood_wait"):
        list(rig.gw.iter_member_pages(SG))
    assert rig.sleeps == []


def basic_group_full(rig):
    tl = rig.tl
    rig.fake.on("GetFullChat", lambda q: P.messages.ChatFull(
        full_chat=P.ChatFull(id=55, about="", notify_settings=P.PeerNotifySettings(),
                             participants=P.ChatParticipants(chat_id=55, version=1, participants=[
                                 P.ChatParticipantCreator(user_id=1),
                                 P.ChatParticipant(user_id=2, inviter_id=1, date=T0)])),
        chats=[tl.basic_group(55, "Old")], users=[tl.user(1, "User1"), tl.user(2, "User2")]))
    # "not a participant" of a basic group is checked against its chat object (not migrated)
    rig.fake.on("GetChats", lambda q: P.messages.Chats(chats=[tl.basic_group(55, "Old")]))


def test_a_basic_group_is_listed_in_one_page(rig):
    basic_group_full(rig)
    pages = list(rig.gw.iter_member_pages(-55))
    assert [[(m.person.id, m.state.status) for m in p] for p in pages] == [[(1, "creator"), (2, "member")]]


def test_basic_group_admins_and_members_come_from_the_full_chat(rig):
    basic_group_full(rig)
    assert [(a.person.id, a.state.status) for a in rig.gw.get_admins(-55)] == [(1, "creator")]
    assert rig.gw.get_member(-55, 3).state == MemberState("left")  # pyrogram: UserNotParticipant
    assert rig.gw.get_member(-55, 2).state == MemberState("member")


def test_admins_use_the_administrators_filter(rig):
    tl = rig.tl
    rig.fake.on("GetParticipants", lambda q: P.channels.ChannelParticipants(
        count=2, participants=[] if q.offset else [
            P.ChannelParticipantCreator(user_id=1, admin_rights=RIGHTS),
            P.ChannelParticipantAdmin(user_id=2, promoted_by=1, date=T0, admin_rights=RIGHTS)],
        chats=[], users=[tl.user(1, "User1"), tl.user(2, "User2")]))
    admins = rig.gw.get_admins(SG)
    assert [(a.person.id, a.state) for a in admins] == [(1, MemberState("creator")),
                                                        (2, MemberState("administrator"))]
    assert isinstance(rig.fake.named("GetParticipants")[0].filter, P.ChannelParticipantsAdmins)


@pytest.mark.parametrize("error, typed", [
    (errors.ChatAdminRequired(), AdminRequired), (errors.ChannelPrivate(), BotNotInChat),
    (errors.PeerIdInvalid(), PeerUnknown), (errors.ChatIdInvalid(), BotNotInChat)])
def test_refusals_become_typed_errors(rig, error, typed):
    rig.fake.on("GetParticipants", lambda q: error)
    with pytest.raises(typed):
        rig.gw.get_admins(SG)
    with pytest.raises(typed):
        list(rig.gw.iter_member_pages(SG))


def test_a_chat_the_bot_never_met_is_peer_unknown(rig):
    rig.fake.on("GetChannels", lambda q: P.messages.Chats(chats=[]))
    with pytest.raises(PeerUnknown, match="-1000000004242"):
        rig.gw.member_count(-1000000004242)


def test_get_member_reads_one_status(rig):
    tl = rig.tl
    rig.fake.on("GetParticipant", lambda q: P.channels.ChannelParticipant(
        participant=P.ChannelParticipant(user_id=2, date=T0), chats=[], users=[tl.user(2, "User2")]))
    info = rig.gw.get_member(SG, 2)
    assert (info.person.id, info.state) == (2, MemberState("member"))


def test_get_member_for_a_user_not_in_the_chat_is_left(rig):
    rig.fake.on("GetParticipant", lambda q: errors.UserNotParticipant())
    info = rig.gw.get_member(SG, 3)
    assert (info.person, info.state) == (Person(id=3), MemberState("left"))


def test_get_member_for_a_user_the_bot_never_met_is_peer_unknown(rig):
    rig.fake.on("GetUsers", lambda q: [])
    with pytest.raises(PeerUnknown, match="user 424242"):
        rig.gw.get_member(SG, 424242)


def test_member_count(rig):
    rig.fake.on("GetFullChannel", lambda q: P.messages.ChatFull(
        full_chat=P.ChannelFull(id=1006, about="", read_inbox_max_id=0, read_outbox_max_id=0,
                                unread_count=0, chat_photo=P.PhotoEmpty(id=0),
                                notify_settings=P.PeerNotifySettings(), bot_info=[], pts=1,
                                participants_count=321),
        chats=[rig.tl.supergroup(1006, "SRG Almaty")], users=[]))
    assert rig.gw.member_count(SG) == 321


def test_me_is_the_bot(rig):
    bot = rig.tl.user(9000, "Bot", "aydarun_bot", bot=True, is_self=True)
    rig.fake.on("GetFullUser", lambda q: P.users.UserFull(
        full_user=P.UserFull(id=9000, settings=P.PeerSettings(), notify_settings=P.PeerNotifySettings(),
                             common_chats_count=0), chats=[], users=[bot]))
    assert rig.gw.me() == BotIdentity(9000, "aydarun_bot", None)


def sent(q):
    return P.UpdateShortSentMessage(id=1, pts=1, pts_count=1, date=T0, out=True)


def sent_to_group(tl, q):
    """What Telegram answers a post into a supergroup: Updates, not UpdateShortSentMessage."""
    msg = P.Message(id=5, peer_id=P.PeerChannel(channel_id=1006), from_id=P.PeerUser(user_id=9000),
                    out=True, date=T0, message=q.message)
    return P.Updates(updates=[P.UpdateMessageID(id=5, random_id=q.random_id),
                              P.UpdateNewChannelMessage(message=msg, pts=2, pts_count=1)],
                     users=[tl.user(9000, "Bot", "aydarun_bot", bot=True, is_self=True)],
                     chats=[tl.supergroup(1006, "SRG Almaty")], date=T0, seq=0)


def test_the_invite_is_sent_with_a_url_button_and_literal_text(rig):
    rig.fake.on("SendMessage", lambda q: sent_to_group(rig.tl, q))
    text = "Join *SRG_Almaty* <b>now</b>"
    rig.gw.send_group_message(SG, text, "Register", "https://t.me/aydarun_bot?start=join_-1000000001006")
    [q] = rig.fake.named("SendMessage")
    assert q.message == text and not q.entities
    [[button]] = [row.buttons for row in q.reply_markup.rows]
    assert isinstance(button.type, P.InlineButtonTypeUrl)  # this layer's url button
    assert (button.text, button.type.url) == ("Register",
                                         "https://t.me/aydarun_bot?start=join_-1000000001006")
    assert isinstance(q.peer, P.InputPeerChannel) and q.peer.channel_id == 1006


def test_posting_without_rights_is_admin_required(rig):
    rig.fake.on("SendMessage", lambda q: errors.ChatWriteForbidden())
    with pytest.raises(AdminRequired):
        rig.gw.send_group_message(SG, "hello")


def test_private_messages_report_delivery_instead_of_raising(rig):
    rig.fake.on("SendMessage", sent)
    assert rig.gw.send_private(2, "welcome") is True
    rig.fake.on("SendMessage", lambda q: errors.UserIsBlocked())
    assert rig.gw.send_private(2, "welcome") is False
    rig.fake.on("GetUsers", lambda q: [])
    assert rig.gw.send_private(424242, "welcome") is False  # never opened the bot: unknown peer


def test_a_disconnected_client_is_telegram_unavailable(rig):
    rig.client.is_connected = False
    rig.client.invoke = type(rig.client).invoke.__get__(rig.client)
    with pytest.raises(TelegramUnavailable):
        rig.gw.member_count(SG)


def test_calling_from_the_loop_thread_is_refused(rig, bg):
    async def inside():
        return rig.gw.member_count(SG)
    with pytest.raises(RuntimeError, match="worker thread"):
        bg.run(inside())


# -- credentials and the client ----------------------------------------------------------------
GOOD = dict(api_id="12345", api_hash="0123456789abcdef0123456789abcdef",
            bot_token="9000:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1")


@pytest.mark.parametrize("key, value, words", [
    ("api_id", None, "telegram.api_id is missing"), ("api_id", "12ab", "telegram.api_id must be"),
    ("api_hash", "", "telegram.api_hash is missing (set it in tgsync.toml [telegram] or "
                     "TGSYNC_TELEGRAM_API_HASH)"),
    ("api_hash", "secret-hash-value-not-hex-000000", "telegram.api_hash is malformed"),
    ("bot_token", None, "telegram.bot_token is missing"),
    ("bot_token", "9000:SHORTsecretTOKEN", "telegram.bot_token is malformed")])
def test_bad_credentials_are_refused_naming_the_key_never_the_value(key, value, words):
    with pytest.raises(ConfigError) as caught:
        check_credentials(**{**GOOD, key: value})
    message = str(caught.value)
    assert words in message and "\n" not in message
    for secret in (GOOD["api_hash"], GOOD["bot_token"], value):
        assert not secret or secret not in message


def test_make_client_checks_before_connecting_and_keeps_the_session_private(tmp_path, bg):
    with pytest.raises(ConfigError, match="api_hash"):
        make_client(GOOD["api_id"], "nope", GOOD["bot_token"], tmp_path / "s")
    assert not (tmp_path / "s").exists()
    client = make_client(**GOOD, session_dir=tmp_path / "s", name="bot", loop=bg.loop)
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700
    assert client.api_id == 12345 and not client.is_connected
    bg.run(client.storage.open())  # what start() does first, without the network
    bg.run(client.storage.close())
    assert stat.S_IMODE(os.stat(tmp_path / "s" / "bot.session").st_mode) == 0o600
    assert bot_id_from_token(GOOD["bot_token"]) == 9000


def test_no_secret_in_gateway_errors(rig):
    rig.fake.on("GetParticipants", lambda q: errors.FloodWait(value=999))
    with pytest.raises(TelegramError) as caught:
        rig.gw.get_admins(SG)
    for secret in (rig.tl.FAKE_API_HASH, rig.tl.FAKE_BOT_TOKEN):
        assert secret not in str(caught.value) and secret not in repr(rig.gw)


# -- a basic group that became a supergroup (issue 11) ------------------------------------------
def _migrated_basic_group(tl):
    return P.Chat(id=55, title="Old", photo=P.ChatPhotoEmpty(), participants_count=0, date=T0,
                  version=2, deactivated=True,
                  migrated_to=P.InputChannel(channel_id=1006, access_hash=1006 * 3 + 1))


def test_a_basic_group_that_migrated_says_where_it_went(rig):
    from tgsync_cli.core.gateway import ChatInfo
    rig.fake.on("GetChats", lambda q: P.messages.Chats(chats=[_migrated_basic_group(rig.tl)]))
    assert rig.gw.chat_info(-55) == ChatInfo(-55, "group", "Old", migrated_to=SG)


def test_a_call_naming_a_migrated_basic_group_raises_chat_migrated_with_the_new_id(rig):
    """MTProto answers a deactivated group's member check with nobody; its chat object then names
    the supergroup, as the Bot API's migrate_to_chat_id would."""
    from tgsync_cli.core.errors import ChatMigratedError
    rig.fake.on("GetFullChat", lambda q: P.messages.ChatFull(
        full_chat=P.ChatFull(id=55, about="", participants=P.ChatParticipantsForbidden(chat_id=55),
                             notify_settings=P.PeerNotifySettings()),
        chats=[_migrated_basic_group(rig.tl)], users=[]))
    rig.fake.on("GetChats", lambda q: P.messages.Chats(chats=[_migrated_basic_group(rig.tl)]))
    with pytest.raises(ChatMigratedError) as caught:
        rig.gw.get_member(-55, 2)
    assert (caught.value.old_chat_id, caught.value.new_chat_id) == (-55, SG)


def test_a_supergroup_names_the_basic_group_it_came_from(rig):
    rig.fake.on("GetFullChannel", lambda q: P.messages.ChatFull(
        full_chat=P.ChannelFull(id=1006, about="", read_inbox_max_id=0, read_outbox_max_id=0,
                                unread_count=0, chat_photo=P.PhotoEmpty(id=0),
                                notify_settings=P.PeerNotifySettings(), bot_info=[], pts=1,
                                migrated_from_chat_id=55, migrated_from_max_id=10),
        chats=[rig.tl.supergroup(1006, "SRG Almaty", "srg_almaty")], users=[]))
    info = rig.gw.chat_info(SG)
    assert (info.id, info.type, info.username, info.migrated_from) == (SG, "supergroup", "srg_almaty", -55)


@pytest.mark.parametrize("error, typed", [
    (errors.HideRequesterMissing(), "JoinRequestMissing"),
    (errors.UserAlreadyParticipant(), "AlreadyParticipant"),
    (errors.ChatAdminRequired(), "AdminRequired")])
def test_telegram_s_answers_to_an_approval_become_typed_errors(rig, error, typed):
    from tgsync_cli.core import errors as core_errors

    rig.fake.on("HideChatJoinRequest", lambda q: error)
    with pytest.raises(getattr(core_errors, typed)):
        rig.gw.approve_join_request(SG, 2)
    [asked] = rig.fake.named("HideChatJoinRequest")
    assert asked.approved is True


def test_a_ban_of_an_admin_is_cannot_remove_and_a_remove_is_ban_then_unban(rig):
    from tgsync_cli.core.errors import CannotRemove

    rig.fake.on("EditBanned", lambda q: errors.UserAdminInvalid())
    with pytest.raises(CannotRemove, match="USER_ADMIN_INVALID"):
        rig.gw.ban_member(SG, 2)
    rig.fake.on("EditBanned", lambda q: P.Updates(updates=[], users=[], chats=[], date=T0, seq=0))
    rig.gw.ban_member(SG, 3)
    rig.gw.unban_member(SG, 3)
    banned, lifted = rig.fake.named("EditBanned")[-2:]
    assert banned.banned_rights.view_messages and not lifted.banned_rights.view_messages
