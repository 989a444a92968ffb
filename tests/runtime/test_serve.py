"""`serve`: pyrogram updates, parsed from raw TL offline, go through the handlers into the roster.

No client is ever started: the handlers are driven directly (they are what pyrogram would call),
and the lifecycle tests run the runtime with a stand-in client whose start/stop touch nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from types import SimpleNamespace

import pytest
from pyrogram import raw, types
from typer.testing import CliRunner

from tests.pyrogram_offline import (FAKE_API_HASH, FAKE_BOT_TOKEN, T0, offline_client, supergroup,
                                     user, wire)
from tgsync_cli.app import make_engine
from tgsync_cli.cli import app
from tgsync_cli.core.events import MemberState, Person
from tgsync_cli.core.gateway import BotIdentity, ChatMemberInfo
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.runtime.serve import MESSAGES, Runtime, StartupReport, privacy_mode_of
from tgsync_cli.sim.faults import FaultyStore
from tgsync_cli.stores import open_store
from tests import worlds

P = raw.types
SG = -1000000001006
BOT = 9000
RIGHTS = P.ChatAdminRights(delete_messages=True, ban_users=True, invite_users=True)


class Telegram:
    """A gateway stand-in: Aida created the group, Ivan and Olga are members; records what is sent."""

    def __init__(self):
        self.members = {1: "creator", 2: "member", 3: "member", 4: "member"}
        self.posts, self.dms = [], []
        self.gate, self.asked = threading.Event(), threading.Event()
        self.gate.set()

    def me(self):
        return BotIdentity(BOT, "aydarun_bot", None)

    def chat_info(self, chat_id):
        from tgsync_cli.core.gateway import ChatInfo
        return ChatInfo(chat_id, "supergroup")

    def get_admins(self, chat_id):
        self.asked.set()
        self.gate.wait(10)  # a slow Telegram, when a test closes the gate
        return [ChatMemberInfo(Person(1, first_name="Aida"), MemberState("creator")),
                ChatMemberInfo(Person(BOT, is_bot=True, first_name="Bot"), MemberState("administrator"))]

    def get_member(self, chat_id, user_id):
        return ChatMemberInfo(Person(user_id), MemberState(self.members.get(user_id, "left")))

    def iter_member_pages(self, chat_id):
        raise AssertionError("not asked in these stories")

    def member_count(self, chat_id):
        return len(self.members)

    def send_group_message(self, chat_id, text, button_text=None, button_url=None):
        self.posts.append((chat_id, button_url))

    def send_private(self, user_id, text):
        self.dms.append((user_id, text))
        return True


@pytest.fixture
def pyro():
    """Pyrogram's own parsers on a never-started client: the objects its handlers receive."""
    client = offline_client()
    users = {u.id: u for u in (user(1, "Aida", "aida"), user(2, "Ivan"), user(3, "Olga"),
                               user(4, "Dana"), user(5, "Stranger"), user(BOT, "Ayda Run", "aydarun_bot", bot=True,
                                                     is_self=True))}
    chats = {1006: supergroup(1006, "SRG Almaty")}

    def run(coro):
        return asyncio.run(coro)

    class Pyro:
        def member(self, user_id, actor_id, prev=None, new=None):
            upd = P.UpdateChannelParticipant(channel_id=1006, date=T0, actor_id=actor_id, user_id=user_id,
                                             qts=1, prev_participant=prev, new_participant=new)
            return run(types.ChatMemberUpdated._parse(client, wire(upd), users, chats))

        def bot_added(self):
            return self.member(BOT, 1, new=P.ChannelParticipantAdmin(user_id=BOT, promoted_by=1, date=T0,
                                                                     admin_rights=RIGHTS))

        def join(self, uid, date=T0):
            return self.member(uid, uid, new=P.ChannelParticipant(user_id=uid, date=date))

        def group_message(self, uid, text="morning run?", date=T0 + 60):
            m = P.Message(id=5, peer_id=P.PeerChannel(channel_id=1006), from_id=P.PeerUser(user_id=uid),
                          date=date, message=text)
            return run(types.Message._parse(client, wire(m), users, chats))

        def private(self, uid, text, date=T0 + 120):
            m = P.Message(id=6, peer_id=P.PeerUser(user_id=uid), date=date, message=text)
            return run(types.Message._parse(client, wire(m), users, chats))

        def channel_post(self):
            m = P.Message(id=7, peer_id=P.PeerChannel(channel_id=1006), date=T0, message="news",
                          post=True)
            return run(types.Message._parse(client, wire(m), users, {1006: wire(P.Channel(
                id=1006, title="News", photo=P.ChatPhotoEmpty(), date=T0, access_hash=1,
                broadcast=True))}))

        def passes(self, message):
            return run(MESSAGES(client, message))
    return Pyro()


@pytest.fixture
def rig():
    store = open_store("memory:")
    tg = Telegram()
    engine = make_engine(store, tg, None, bot_id=BOT)
    loop = asyncio.new_event_loop()
    runtime = Runtime(client=None, loop=loop, engine=engine, bot_id=BOT,
                      pipeline=Pipeline(engine, backoff=(0.001, 0.01)))
    yield SimpleNamespace(store=store, tg=tg, engine=engine, runtime=runtime, loop=loop)
    loop.close()
    store.close()


def roster(store):
    return worlds.roster(store, SG)


def feed(runtime, handler, update):
    asyncio.run(getattr(runtime, handler)(None, update))


def test_a_club_s_first_hour_through_the_live_handlers(rig, pyro):
    r = rig.runtime
    feed(r, "on_member_updated", pyro.bot_added())  # Aida makes the bot an admin
    feed(r, "on_member_updated", pyro.join(2))  # Ivan joins (route 3)
    feed(r, "on_message", pyro.group_message(3))  # Olga writes (route 4)
    feed(r, "on_message", pyro.private(4, f"/start join_{SG}"))  # Dana presses the button (route 2)
    feed(r, "on_message", pyro.private(5, f"/start join_{SG}"))  # a stranger presses it too
    assert roster(rig.store) is None  # handlers only handed the events over
    r.pipeline.start()
    assert r.pipeline.stop() == 0
    assert roster(rig.store) == {1: ("organizer", "active", "admin_import"),
                                 2: ("member", "active", "chat_member_event"),
                                 3: ("member", "active", "message_activity"),
                                 4: ("member", "active", "manual_registration")}
    assert rig.tg.posts == [(SG, f"https://t.me/aydarun_bot?start=join_{SG}")]
    assert [uid for uid, _ in rig.tg.dms] == [4, 5]
    assert "Join SRG Almaty on Telegram first" in rig.tg.dms[1][1]


def test_a_handler_returns_while_the_engine_is_still_waiting_on_telegram(rig, pyro):
    """The update loop never waits for slow-path work: Telegram stalls the admin import, and the
    next update's handler still returns at once with its event queued."""
    r = rig.runtime
    rig.tg.gate.clear()
    r.pipeline.start()
    feed(r, "on_member_updated", pyro.bot_added())
    assert rig.tg.asked.wait(10)  # the worker is now stuck in get_admins
    feed(r, "on_message", pyro.group_message(3))
    feed(r, "on_message", pyro.group_message(2))
    members = roster(rig.store) or {}
    assert 3 not in members and 2 not in members  # accepted, not applied
    assert r.pipeline.backlog() >= 2
    rig.tg.gate.set()
    r.pipeline.stop()
    assert {2, 3} <= set(roster(rig.store))


def test_only_group_and_private_messages_reach_the_handler(pyro):
    assert pyro.passes(pyro.group_message(2)) and pyro.passes(pyro.private(2, "/start"))
    assert not pyro.passes(pyro.channel_post())


def test_an_update_arriving_while_stopping_is_kept_for_the_next_start(rig, pyro, tmp_path):
    spool = tmp_path / "pending-events.jsonl"
    rig.runtime.pipeline = Pipeline(rig.engine, spool_path=str(spool))
    rig.runtime.request_stop("SIGTERM")
    feed(rig.runtime, "on_message", pyro.group_message(2))  # Telegram delivered it: not dropped
    assert rig.runtime.late == 1
    assert rig.runtime.pipeline.stop(timeout=1) == 1
    assert [json.loads(x)["sender"]["id"] for x in spool.read_text().splitlines()] == [2]


# -- lifecycle ------------------------------------------------------------------------------------
class StandInClient:
    """What Runtime needs of pyrogram's Client, with start/stop touching nothing."""

    def __init__(self, privacy_off=False):
        self.handlers, self.started, self.stopped = [], False, False
        self.privacy_off = privacy_off

    def add_handler(self, handler, group=0):
        self.handlers.append(handler)

    async def start(self):
        self.started = True

    async def stop(self):
        self.stopped = True

    async def get_me(self):
        return SimpleNamespace(id=BOT, username="aydarun_bot",
                               can_read_all_group_messages=self.privacy_off)


def lifecycle_rig(store, tg, spool, **kw):
    engine = make_engine(store, tg, None, bot_id=BOT)
    reports = []
    runtime = Runtime(client=StandInClient(), loop=asyncio.new_event_loop(), engine=engine,
                      bot_id=BOT, pipeline=Pipeline(engine, spool_path=str(spool), backoff=(0.001, 0.01)),
                      on_started=reports.append, **kw)
    return runtime, reports


def drive(runtime, steps):
    """From another thread, as pyrogram's dispatcher and the OS would: updates, then the stop."""
    errors = []

    def go():
        try:
            assert runtime.started.wait(10)
            for handler, update in steps[:-1]:
                asyncio.run_coroutine_threadsafe(getattr(runtime, handler)(None, update),
                                                 runtime.loop).result(10)
            steps[-1]()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            runtime.request_stop("test failure")
    t = threading.Thread(target=go)
    t.start()
    return t, errors


def test_sigterm_drains_pending_work_then_exits_0(pyro, tmp_path):
    store, tg = open_store("memory:"), Telegram()
    runtime, reports = lifecycle_rig(store, tg, tmp_path / "spool.jsonl")
    tg.gate.clear()  # keep work pending when the signal arrives

    def terminate():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # ours, or this would kill pytest
        os.kill(os.getpid(), signal.SIGTERM)
        tg.gate.set()
    t, errors = drive(runtime, [("on_member_updated", pyro.bot_added()),
                                ("on_member_updated", pyro.join(2)),
                                ("on_message", pyro.group_message(3)), terminate])
    assert runtime.run() == 0
    t.join()
    assert not errors
    assert roster(store) == {1: ("organizer", "active", "admin_import"),
                             2: ("member", "active", "chat_member_event"),
                             3: ("member", "active", "message_activity")}
    assert runtime.client.stopped and not (tmp_path / "spool.jsonl").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed on the way out
    [report] = reports
    assert report.username == "aydarun_bot" and report.privacy_mode is None
    assert "route 4" in report.route4_warning
    runtime.loop.close()


def test_with_the_store_down_at_shutdown_pending_events_are_spooled_and_replayed_first(pyro, tmp_path):
    store, tg = open_store("memory:"), Telegram()
    spool = tmp_path / "session" / "pending-events.jsonl"
    outage = FaultyStore(store)
    runtime, _ = lifecycle_rig(outage, tg, spool, drain_timeout=0.2)

    def stop():
        outage.fail_for(3600)  # MongoDB goes away with two events still queued
        for handler, update in (("on_member_updated", pyro.join(2)),
                                ("on_message", pyro.group_message(3))):
            asyncio.run_coroutine_threadsafe(getattr(runtime, handler)(None, update),
                                             runtime.loop).result(10)
        runtime.request_stop("SIGTERM")  # what the signal handler calls
    t, errors = drive(runtime, [("on_member_updated", pyro.bot_added()), stop])
    assert runtime.run() == 0
    t.join()
    assert not errors
    lines = [json.loads(x) for x in spool.read_text().splitlines()]
    assert runtime.spooled == len(lines)
    # in arrival order (the bot's own arrival may still be pending too, ahead of them)
    assert [(x["type"], (x.get("user") or x.get("sender"))["id"]) for x in lines[-2:]] == [
        ("MemberStatusChanged", 2), ("MessageSeen", 3)]
    runtime.loop.close()

    outage.heal()  # MongoDB is back; the next start replays the spool before anything else
    again, _ = lifecycle_rig(store, Telegram(), spool)
    t, errors = drive(again, [lambda: again.request_stop("SIGINT")])
    assert again.run() == 0
    t.join()
    members = roster(store)
    assert members[2] == ("member", "active", "chat_member_event")
    assert members[3] == ("member", "active", "message_activity")
    assert not spool.exists()
    again.loop.close()


def test_startup_report_warns_about_route_4_unless_privacy_mode_is_off():
    from tgsync_cli.core.engine import ClubInfo
    clubs = [ClubInfo("club_a", SG, "SRG Almaty", bot_is_admin=False, bot_present=True)]
    assert privacy_mode_of(SimpleNamespace(can_read_all_group_messages=True)) is False
    assert privacy_mode_of(SimpleNamespace(can_read_all_group_messages=False)) is None
    assert StartupReport(BOT, "b", False, clubs).route4_warning is None
    warning = StartupReport(BOT, "b", None, clubs).route4_warning
    assert "unknown" in warning and "SRG Almaty" in warning and "/setprivacy" in warning


# -- the command ------------------------------------------------------------------------------------


def with_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("TGSYNC_TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TGSYNC_TELEGRAM_API_HASH", FAKE_API_HASH)
    monkeypatch.setenv("TGSYNC_TELEGRAM_BOT_TOKEN", FAKE_BOT_TOKEN)
    monkeypatch.setenv("TGSYNC_TELEGRAM_SESSION_DIR", str(tmp_path / "session"))


def test_serve_with_log_json_prints_the_bot_and_clubs_and_exits_0_on_sigterm(bare, monkeypatch):
    with_credentials(monkeypatch, bare)

    unhandled = []

    class SelfStopping(StandInClient):
        async def get_me(self):  # once the bot knows who it is, the operator presses Ctrl-C
            handler = signal.getsignal(signal.SIGINT)
            if handler in (signal.default_int_handler, signal.SIG_DFL, signal.SIG_IGN, None):
                unhandled.append(handler)  # a real Ctrl-C would hit pytest itself: do not send it
                raise RuntimeError("serve installed no SIGINT handler")
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)
            return await super().get_me()
    made = []

    def fake_make_client(api_id, api_hash, bot_token, session_dir, **kw):
        assert api_hash == FAKE_API_HASH  # the real settings reach the factory...
        made.append(SelfStopping())
        return made[-1]
    monkeypatch.setattr("tgsync_cli.runtime.serve.make_client", fake_make_client)
    result = CliRunner().invoke(app, ["serve", "--log-json", "--store", "memory:"])
    assert not unhandled, "serve's SIGINT handler was not installed before the bot started"
    assert result.exit_code == 0, result.output
    assert "@aydarun_bot" in result.stdout and "privacy mode: unknown" in result.stdout
    assert "route 4" in result.stderr
    logs = [json.loads(line) for line in result.stderr.splitlines()]  # nothing but JSON
    assert {"started", "shutdown", "stopped"} <= {rec.get("event") for rec in logs}
    for secret in (FAKE_API_HASH, FAKE_BOT_TOKEN):  # ...and never the output
        assert secret not in result.stdout and secret not in result.stderr
    assert made[0].stopped and (bare / "session").is_dir()


def test_serve_refused_token_is_one_line_naming_the_setting(bare, monkeypatch):
    from pyrogram import errors
    with_credentials(monkeypatch, bare)

    class Refused(StandInClient):
        async def start(self):
            raise errors.AccessTokenInvalid()
    monkeypatch.setattr("tgsync_cli.runtime.serve.make_client", lambda *a, **k: Refused())
    result = CliRunner().invoke(app, ["serve", "--store", "memory:"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: telegram.bot_token was refused by Telegram (ACCESS_TOKEN_INVALID); check it with @BotFather"]
    assert FAKE_BOT_TOKEN not in result.output + result.stderr


def test_serve_with_the_celery_queue_missing_says_so(bare, monkeypatch):
    import importlib.util
    with_credentials(monkeypatch, bare)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tgsync_cli.runtime.celery_queue" else real(name, *a))
    result = CliRunner().invoke(app, ["serve", "--queue", "celery", "--store", "memory:"])
    assert result.exit_code == 1 and "celery queue not available" in result.stderr


def test_after_the_connection_drops_the_bot_s_status_is_asked_again_before_the_next_update(rig, pyro):
    """SPEC §3: a demotion missed while the connection was down is known before the next update
    is applied, so service messages and routes are judged by the bot's real rights."""
    r = rig.runtime
    r.pipeline.start()
    feed(r, "on_member_updated", pyro.bot_added())  # admin, as the store records
    rig.tg.members[BOT] = "member"  # Telegram demotes the bot; the update never arrives
    feed(r, "on_message", pyro.group_message(3))
    r.pipeline.stop()
    assert rig.store.club_by_group(SG)["sync"]["bot_is_admin"] is True  # nothing told us yet

    r.pipeline = Pipeline(rig.engine, backoff=(0.001, 0.01))
    r.pipeline.start()
    asyncio.run(r.on_disconnect(None))  # the connection drops; pyrogram reconnects by itself
    feed(r, "on_message", pyro.group_message(2))
    r.pipeline.stop()
    sync = rig.store.club_by_group(SG)["sync"]
    assert sync["bot_is_admin"] is False and sync["bot_present"] is True
    assert 2 in roster(rig.store)  # and the update itself was applied after the check
    assert r.recheck_pending is False  # asked once, not before every update


def test_a_stop_signal_whose_exception_a_library_swallowed_still_stops_serve_before_it_connects(tmp_path,
                                                                                              monkeypatch):
    """Given a SIGTERM that reached tgsync's entry handler while it was starting, inside a library
    that caught the exception it raised (an `except BaseException` around an import), when serve's
    runtime starts, it stops at once with status 0: it never connects, nothing is taken."""
    from tgsync_cli import entry

    monkeypatch.setitem(entry._stopping, "now", False)
    monkeypatch.setitem(entry._stopping, "early", False)
    store, tg = open_store("memory:"), Telegram()
    runtime, reports = lifecycle_rig(store, tg, tmp_path / "spool.jsonl")
    try:
        entry._early(signal.SIGTERM, None)
    except BaseException:  # what such a library does with it
        pass
    runtime.signalled_early = entry.signalled_early
    ran: list = []
    t = threading.Thread(target=lambda: ran.append(runtime.run()))
    t.start()
    t.join(10)
    stopped_by_itself = not t.is_alive()
    if not stopped_by_itself:  # it served on: end it, so the failure is reported, not a hang
        runtime.request_stop("test")
        t.join(10)
    assert stopped_by_itself and ran == [0]
    assert not runtime.client.started and reports == []
