"""One-shot commands against a PyrogramGateway whose `invoke` answers raw TL: no network at all."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime

import pytest
from pyrogram import raw
from typer.testing import CliRunner

from tests.pyrogram_offline import (FAKE_API_HASH, FAKE_BOT_TOKEN, T0, offline_client, supergroup,
                                     user, wire)
from tgsync_cli.ops import live_imports as live
from tgsync_cli.runtime import live as connection
from tgsync_cli.cli import app
from tgsync_cli.runtime.config import load_settings
from tgsync_cli.core.errors import AdminRequired, InputError
from tgsync_cli.core.events import Person
from tgsync_cli.core.store import Observation
from tgsync_cli.stores import open_store
from tgsync_cli.runtime.telegram_gateway import BackgroundLoop, PyrogramGateway

P = raw.types
SG = -1000000001006
OLD = datetime(2024, 1, 1)
COMMANDS = [["serve"], ["import-admins", str(SG)], ["import-members", "@srg_almaty"],
            ["post-invite", str(SG)]]


class Invoke:
    """Stands in for `Client.invoke`: answers per TL function, records every query."""

    def __init__(self):
        self.calls, self.handlers = [], {}

    async def __call__(self, query, *args, **kwargs):
        self.calls.append(query)
        answer = self.handlers[type(query).__name__](query)
        if isinstance(answer, Exception):
            raise answer
        return wire(answer)

    def named(self, name):
        return [q for q in self.calls if type(q).__name__ == name]


@pytest.fixture
def telegram():
    """A never-started client that knows the group (as a session would) and answers via `invoke`."""
    with BackgroundLoop() as bg:
        client = offline_client(loop=bg.loop)
        bg.run(client.storage.open())
        client.is_connected = True
        bg.run(client.fetch_peers([supergroup(1006, "SRG Almaty", "srg_almaty"),
                                   user(9000, "Ayda Run", "aydarun_bot", bot=True, is_self=True)]))
        client.invoke = invoke = Invoke()
        gateway = PyrogramGateway(client, bg.loop, sleep=lambda s: None)

        @contextmanager
        def connect(settings):
            yield connection.Connection(gateway, lambda chat: connection.chat_info(gateway, chat))
        invoke.connect = connect
        yield invoke
        bg.run(client.storage.close())


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return load_settings(env={"TGSYNC_TELEGRAM_API_ID": "12345", "TGSYNC_TELEGRAM_API_HASH": FAKE_API_HASH,
                              "TGSYNC_TELEGRAM_BOT_TOKEN": FAKE_BOT_TOKEN,
                              "TGSYNC_TELEGRAM_SESSION_DIR": str(tmp_path / "session")},
                         store="memory:")


@pytest.fixture
def club_store(monkeypatch):
    """SRG Almaty as the store knows it: Ivan active, Olga recorded as left long ago."""
    store = open_store("memory:")
    doc, _ = store.create_club(SG, "SRG Almaty", None, {"bot_present": True, "bot_is_admin": True})
    for tid, status in ((100000, "active"), (100001, "left")):
        person = Person(tid, first_name=f"M{tid}")
        store.observe(doc["_id"], Observation(person, "active", None, OLD, "message_activity",
                                              strictly_newer=True))
        if status == "left":
            store.observe(doc["_id"], Observation(person, "left", "member", OLD, "chat_member_event"))
    monkeypatch.setattr(live, "store_from", lambda settings: store)
    store.close = lambda: None
    yield store


def members_page(q, total=450, bot=100449):
    n = max(0, min(q.limit, total - q.offset))
    users = [user(i, f"M{i}", bot=(i == bot)) for i in range(100000 + q.offset, 100000 + q.offset + n)]
    return P.channels.ChannelParticipants(
        count=total, participants=[P.ChannelParticipant(user_id=u.id, date=T0) for u in users],
        chats=[], users=users)


def full_channel(count):
    return lambda q: P.messages.ChatFull(
        full_chat=P.ChannelFull(id=1006, about="", read_inbox_max_id=0, read_outbox_max_id=0,
                                unread_count=0, chat_photo=P.PhotoEmpty(id=0),
                                notify_settings=P.PeerNotifySettings(), bot_info=[], pts=1,
                                participants_count=count),
        chats=[supergroup(1006, "SRG Almaty", "srg_almaty")], users=[])


def test_import_members_adds_the_new_updates_the_returned_and_skips_bots_one_write_per_page(
        settings, telegram, club_store):
    telegram.handlers.update(GetParticipants=members_page, GetFullChannel=full_channel(450))
    writes, seen = [], []
    real = club_store.observe_many
    club_store.observe_many = lambda cid, obs, **kw: (writes.append(len(obs)), real(cid, obs, **kw))[1]
    ops_at = []

    def progress(done, total):
        seen.append((done, total))
        ops_at.append(club_store.ops)
    summary = live.import_members(settings, str(SG), progress, connect=telegram.connect)
    assert (summary.added, summary.updated, summary.unchanged, summary.skipped) == (447, 1, 1, 1)
    assert summary.listed == 450 and not summary.club_created
    assert seen == [(0, 450), (200, 450), (400, 450), (450, 450)]
    # one store call per page, observing every listed person; the bot skipped
    assert writes == [200, 200, 49]
    per_page = [b - a for a, b in zip(ops_at, ops_at[1:])]
    assert len(set(per_page)) == 1 and per_page[0] <= 4  # round trips per page, not per member
    doc = club_store.club_by_group(SG)
    by_id = {m["telegram_id"]: m for m in doc["members"]}
    assert len(by_id) == 449 and 100449 not in by_id
    assert (by_id[100001]["status"], by_id[100001]["source"]) == ("active", "message_activity")
    assert by_id[100300]["source"] == "member_import"
    assert [q.offset for q in telegram.named("GetParticipants")] == [0, 200, 400, 450]


def test_import_members_by_username_finds_the_group_through_telegram(settings, telegram, club_store):
    telegram.handlers.update(GetParticipants=lambda q: members_page(q, total=3),
                             GetFullChannel=full_channel(3))
    summary = live.import_members(settings, "@srg_almaty", connect=telegram.connect)
    assert summary.chat_id == SG and summary.added == 1  # 100002; Ivan known, Olga back
    # the club has no username in the store: Telegram resolved it from the session's peers
    assert not telegram.named("ResolveUsername")


def test_import_admins_makes_organizers(settings, telegram, club_store):
    rights = P.ChatAdminRights(delete_messages=True, ban_users=True)
    telegram.handlers["GetParticipants"] = lambda q: P.channels.ChannelParticipants(
        count=2, participants=[] if q.offset else [
            P.ChannelParticipantCreator(user_id=1, admin_rights=rights),
            P.ChannelParticipantAdmin(user_id=9000, promoted_by=1, date=T0, admin_rights=rights)],
        chats=[], users=[user(1, "Aida", "aida"), user(9000, "Ayda Run", "aydarun_bot", bot=True,
                                                        is_self=True)])
    s = live.import_admins(settings, str(SG), connect=telegram.connect)
    assert (s.added, s.updated, s.skipped) == (1, 0, 1)
    [aida] = [m for m in club_store.club_by_group(SG)["members"] if m["telegram_id"] == 1]
    assert (aida["role"], aida["source"]) == ("organizer", "admin_import")


def test_post_invite_sends_the_deep_link_button(settings, telegram, club_store):
    def sent(q):
        msg = P.Message(id=5, peer_id=P.PeerChannel(channel_id=1006), from_id=P.PeerUser(user_id=9000),
                        out=True, date=T0, message=q.message)
        return P.Updates(updates=[P.UpdateMessageID(id=5, random_id=q.random_id),
                                  P.UpdateNewChannelMessage(message=msg, pts=2, pts_count=1)],
                         users=[user(9000, "Ayda Run", "aydarun_bot", bot=True, is_self=True)],
                         chats=[supergroup(1006, "SRG Almaty")], date=T0, seq=0)
    telegram.handlers["SendMessage"] = sent
    telegram.handlers["GetFullUser"] = lambda q: P.users.UserFull(
        full_user=P.UserFull(id=9000, settings=P.PeerSettings(), notify_settings=P.PeerNotifySettings(),
                             common_chats_count=0),
        chats=[], users=[user(9000, "Ayda Run", "aydarun_bot", bot=True, is_self=True)])
    s = live.post_invite(settings, str(SG), connect=telegram.connect)
    assert s.link == f"https://t.me/aydarun_bot?start=join_{SG}"
    [q] = telegram.named("SendMessage")
    [[button]] = [row.buttons for row in q.reply_markup.rows]
    assert button.type.url == s.link


def test_a_chat_the_bot_cannot_list_is_one_line_from_telegram(settings, telegram, club_store):
    from pyrogram import errors
    telegram.handlers.update(GetParticipants=lambda q: errors.ChatAdminRequired(),
                             GetFullChannel=full_channel(10))
    with pytest.raises(AdminRequired, match="needs the bot to be an admin"):
        live.import_members(settings, str(SG), connect=telegram.connect)


@pytest.mark.parametrize("chat", ["12345", "srg_almaty", "-100abc", ""])
def test_what_can_never_be_a_group_is_refused_before_anything_opens(chat):
    with pytest.raises(InputError, match="CHAT"):
        connection.parse_chat(chat)


# -- the commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_without_credentials_each_command_names_the_missing_setting(bare, args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: telegram.api_id is missing (set it in tgsync.toml [telegram] or TGSYNC_TELEGRAM_API_ID)"]
    assert list(bare.iterdir()) == []  # no store, no session directory: refused before anything


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_config_without_the_token_names_it_and_shows_no_secret(bare, args):
    cfg = bare / "tgsync.toml"
    cfg.write_text(f'[store]\nuri = "memory:"\n[telegram]\napi_id = 12345\napi_hash = "{FAKE_API_HASH}"\n')
    cfg.chmod(0o600)
    result = CliRunner().invoke(app, ["--config", str(cfg), *args])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: telegram.bot_token is missing (set it in tgsync.toml [telegram] or TGSYNC_TELEGRAM_BOT_TOKEN)"]
    assert FAKE_API_HASH not in result.output + result.stderr


def test_import_members_command_shows_a_summary_and_no_secret(bare, monkeypatch, telegram, club_store):
    monkeypatch.setenv("TGSYNC_TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TGSYNC_TELEGRAM_API_HASH", FAKE_API_HASH)
    monkeypatch.setenv("TGSYNC_TELEGRAM_BOT_TOKEN", FAKE_BOT_TOKEN)
    telegram.handlers.update(GetParticipants=lambda q: members_page(q, total=5),
                             GetFullChannel=full_channel(5))
    monkeypatch.setattr(live, "pyrogram_connection", telegram.connect)
    result = CliRunner().invoke(app, ["import-members", str(SG)])
    assert result.exit_code == 0, result.stderr
    assert "SRG Almaty" in result.stdout
    assert all(col in result.stdout for col in ("added", "updated", "unchanged", "skipped"))
    result = CliRunner().invoke(app, ["import-members", str(SG), "--json"])
    assert json.loads(result.stdout)["unchanged"] == 5  # the second run changes nothing
    for secret in (FAKE_API_HASH, FAKE_BOT_TOKEN):
        assert secret not in result.stdout + result.stderr
