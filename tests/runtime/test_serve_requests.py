"""`serve` and the roster's word: a join request pyrogram hands over reaches the engine through
the same pipeline as every update, and the app's requests are looked for every few seconds."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pyrogram import raw, types

from tests.pyrogram_offline import T0, offline_client, supergroup, user, wire
from tests.worlds import Story
from tgsync_cli.app import make_engine
from tgsync_cli.core.events import JoinRequested, RequestsDue
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.runtime.serve import Runtime
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.stores import open_store

P = raw.types
CHAT = -1000000001500  # channel 1500 as the Bot API and pyrogram name it


class Recorder:
    def __init__(self):
        self.events = []

    def submit(self, event, timeout=None):
        self.events.append(event)

    def backlog(self):
        return 0


def join_request(uid: int):
    client = offline_client()
    users = {uid: user(uid, "Erlan")}
    chats = {1500: supergroup(1500, "Sunday Long Run")}
    upd = P.UpdateBotChatInviteRequester(peer=P.PeerChannel(channel_id=1500), date=T0, user_id=uid,
                                         about="", invite=P.ChatInvitePublicJoinRequests(), qts=1)
    return asyncio.run(types.ChatJoinRequest._parse(client, wire(upd), users, chats))


def test_a_join_request_from_pyrogram_is_answered_by_the_roster_policy():
    """The bot is an admin of a roster club; Erlan asks to join through pyrogram's handler and
    gets the registration button in private, his request left pending."""
    store = open_store("memory:")
    story = Story({1: "creator", 2: "member"}, chat=CHAT).bot_added().then("policy", join="roster")
    sim = Simulator(story.scenario, lambda gw: make_engine(store, gw, None))
    sim.run()
    sim.world.chat(CHAT).requests[5] = sim.world.now  # Telegram holds his request
    loop = asyncio.new_event_loop()
    runtime = Runtime(client=None, loop=loop, engine=sim.engine, bot_id=8000,
                      pipeline=Pipeline(sim.engine, backoff=(0.001, 0.01)))
    try:
        asyncio.run(runtime.on_join_request(None, join_request(5)))
        runtime.pipeline.start()
        assert runtime.pipeline.stop() == 0
    finally:
        loop.close()
    [dm] = [s for s in sim.gateway.sent if s.chat == 5]
    assert dm.buttons == (f"https://t.me/club_sync_bot?start=join_{CHAT}",)
    [req] = store.requests_of(telegram_id=5)
    assert req["state"] == "waiting"


def test_serve_looks_for_the_app_s_requests_every_few_seconds():
    loop = asyncio.new_event_loop()
    rec = Recorder()
    runtime = Runtime(client=None, loop=loop, engine=None, bot_id=8000, pipeline=rec)
    runtime.requests_poll_seconds = 0.01

    async def a_moment():
        task = asyncio.ensure_future(runtime._poll_requests())
        await asyncio.sleep(0.2)
        runtime.accepting = False
        await asyncio.wait_for(task, 1)
    try:
        loop.run_until_complete(a_moment())
    finally:
        loop.close()
    due = [e for e in rec.events if isinstance(e, RequestsDue)]
    assert len(due) >= 3 and all(isinstance(e.at, datetime) for e in due)
    assert not [e for e in rec.events if isinstance(e, JoinRequested)]
