"""The raw-update fast path: a cached member's group message skips pyrogram's parse, and what
it hands the pipeline is exactly what the full path would have handed it.

Differential, on every scenario: each message the simulator delivers is rendered as the raw
MTProto update Telegram would send; at that moment (the engine holding what it holds then) the
fast path either declines, or yields the very events pyrogram's parse and our adapter yield.
"""

from __future__ import annotations

import copy
import tempfile

import pytest
from pyrogram import raw

from tests.mtproto_render import NotRepresentable, Renderer, normalise_ids
from tests.pyrogram_offline import client  # noqa: F401 (fixture)
from tests.sources.test_adapters_agree import SCENARIOS
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.runtime.fast_path import FastPath
from tgsync_cli.runtime.wiring import make_engine
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.sources.scenario import load_scenario
from tgsync_cli.stores import open_store


class StandInRuntime:
    """What the fast path reads of the runtime: the engine and the bot's id."""

    def __init__(self, engine, bot_id):
        self.engine, self.bot_id = engine, bot_id
        self.accepting, self.recheck_pending = True, False


class Differential(Simulator):
    """The simulator; before each message reaches the engine, both paths read it."""

    def __init__(self, scenario, factory, client):
        self.render = Renderer(client, scenario["bot"]["id"])
        self.bot_id = scenario["bot"]["id"]
        self.taken = self.declined = self.messages = self.unrepresentable = 0
        super().__init__(scenario, factory)

    def _deliver(self, update):
        if self.online and ("message" in update or "channel_post" in update):
            self.messages += 1
            self.compare(copy.deepcopy(update))
        super()._deliver(update)

    def compare(self, update):
        try:
            full = self.render.update(update)
        except NotRepresentable:
            self.unrepresentable += 1
            return
        m = self.render.last_message
        wrapper = (raw.types.UpdateNewChannelMessage(message=m, pts=1, pts_count=1)
                   if isinstance(m.peer_id, raw.types.PeerChannel)
                   else raw.types.UpdateNewMessage(message=m, pts=1, pts_count=1))
        fast = FastPath(StandInRuntime(self.engine, self.bot_id)).event(
            wrapper, self.render.users, self.render.chats)
        if fast is None:
            self.declined += 1
        else:
            self.taken += 1
            assert [fast] == full, f"message {update['message']}"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_on_every_scenario_the_fast_path_yields_what_the_full_parse_yields(path, client):  # noqa: F811
    scenario = normalise_ids(load_scenario(path))
    store = open_store("memory:")
    sim = Differential(scenario, lambda gw: make_engine(store, gw, cache=MemoryMemberCache()), client)
    sim.run()
    assert sim.taken + sim.declined + sim.unrepresentable == sim.messages
    assert sim.unrepresentable <= sim.messages // 10


def test_the_fast_path_takes_known_members_and_leaves_newcomers_to_the_full_path(client):  # noqa: F811
    """Across the scenarios both branches are exercised: cached members are taken, a first
    message from someone the cache does not hold is declined (the full path creates them)."""
    taken = declined = 0
    for path in SCENARIOS:
        scenario = normalise_ids(load_scenario(path))
        store = open_store("memory:")
        sim = Differential(scenario, lambda gw: make_engine(store, gw, cache=MemoryMemberCache()), client)
        sim.run()
        taken, declined = taken + sim.taken, declined + sim.declined
    assert taken > 0 and declined > 0


def test_through_pyrogram_s_dispatcher_both_paths_hand_the_pipeline_the_same_events():
    """Encrypted packets through a real Client's dispatcher and serve's handlers: with and
    without the fast path, the pipeline receives equal events, in the same order; with it,
    every one of them skipped Message._parse."""
    from tgsync_cli.bench import mtproto
    from tgsync_cli.bench.workload import generate

    w = generate(2, 30, 1, 200)
    pkts = mtproto.packets(w, 150)
    root = tempfile.mkdtemp()
    slow = mtproto.Rig(w, root, fast=False)
    fast = mtproto.Rig(w, root, fast=True)
    parsed = []
    import pyrogram

    inner = pyrogram.types.Message._parse

    async def counting(*a, **kw):
        parsed.append(1)
        return await inner(*a, **kw)
    pyrogram.types.Message._parse = counting
    try:
        got = {}
        for name, rig in (("slow", slow), ("fast", fast)):
            before = len(parsed)
            rig.loop.run_until_complete(rig._pass(pkts))
            got[name] = (list(rig.pipeline._q.queue), len(parsed) - before)
            assert rig.runtime.received["message"] == 150  # both paths count what arrived
    finally:
        pyrogram.types.Message._parse = inner
    assert got["slow"][0] == got["fast"][0] and len(got["slow"][0]) == 150
    assert got["slow"][1] == 150 and got["fast"][1] == 0
    for rig in (slow, fast):
        rig._apply()
        rig.close()


def test_while_a_reconnect_check_is_pending_the_full_path_runs(client):  # noqa: F811
    from tgsync_cli.bench import mtproto
    from tgsync_cli.bench.workload import generate

    w = generate(1, 20, 1, 50)
    rig = mtproto.Rig(w, tempfile.mkdtemp(), fast=True)
    rig.runtime.recheck_pending = True
    rig.loop.run_until_complete(rig._pass(mtproto.packets(w, 3)))
    names = [type(e).__name__ for _seq, e in rig.pipeline._q.queue]  # (journal sequence, event)
    assert names[0] == "BotStatusRecheck" and names.count("MessageSeen") == 3
    rig.close()


# -- one cached member, every shape of message ---------------------------------------------------------
def _cached_member_world():
    from tests.pyrogram_offline import basic_group, supergroup, user
    from tgsync_cli.core.engine import Engine
    from tgsync_cli.core.gateway import OfflineGateway
    from tgsync_cli.stores import open_store as open_docs

    store = open_docs("memory:")
    store.import_documents({"clubs": [
        {"_id": "c1", "name": "SRG", "telegram_group_id": -1000000001006, "members": [
            {"user_id": "u1", "telegram_id": 2, "role": "member", "status": "active"}],
         "sync": {"bot_is_admin": True, "bot_present": True}},
        {"_id": "c2", "name": "Basic", "telegram_group_id": -77, "members": [
            {"user_id": "u1", "telegram_id": 2, "role": "member", "status": "active"}],
         "sync": {"bot_is_admin": True, "bot_present": True}}],
        "users": [{"_id": "u1", "telegram_id": 2, "first_name": "Ivan"}]})
    engine = Engine(store, OfflineGateway(9000, "aydarun_bot"), MemoryMemberCache(), bot_id=9000)
    engine.start()
    users = {2: user(2, "Ivan", username="ivan_runs", lang="ru"), 3: user(3, "Newcomer")}
    chats = {1006: supergroup(1006, "SRG", username="srg_runs"), 77: basic_group(77, "Basic"),
             1500: wire_broadcast()}
    return engine, users, chats


def wire_broadcast():
    from tests.pyrogram_offline import broadcast

    return broadcast(1500, "News")


P = raw.types
SRG = P.PeerChannel(channel_id=1006)
SHAPES = {
    "plain text": (dict(peer_id=SRG, message="km today"), True),
    "a reply": (dict(peer_id=SRG, message="me too", reply_to=P.MessageReplyHeader(reply_to_msg_id=1)), True),
    "a photo, no caption": (dict(peer_id=SRG, message="", media=P.MessageMediaPhoto()), True),
    "a basic group": (dict(peer_id=P.PeerChat(chat_id=77), message="hi"), True),
    "a newcomer": (dict(peer_id=SRG, message="hello", from_id=P.PeerUser(user_id=3)), False),
    "the bot's own": (dict(peer_id=SRG, message="welcome", out=True), False),
    "a forward": (dict(peer_id=SRG, message="fwd", fwd_from=P.MessageFwdHeader(date=1)), False),
    "sent as a channel": (dict(peer_id=SRG, message="x", from_id=P.PeerChannel(channel_id=1500)), False),
    "a channel post": (dict(peer_id=P.PeerChannel(channel_id=1500), message="news", from_id=None), False),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_message_is_taken_only_when_the_full_path_would_mean_the_same(client, shape):  # noqa: F811
    """Taken: the events equal the full parse's. Declined: the full path decides."""
    from pyrogram import types

    from tests.pyrogram_offline import T0, run, wire
    from tgsync_cli.sources.pyrogram_updates import events_from_message

    engine, users, chats = _cached_member_world()
    fields, expect_taken = SHAPES[shape]
    fields = dict({"from_id": P.PeerUser(user_id=2)}, **fields)
    m = wire(P.Message(id=5, date=T0, **fields))
    upd = (P.UpdateNewChannelMessage if isinstance(m.peer_id, P.PeerChannel) else P.UpdateNewMessage)(
        message=m, pts=1, pts_count=1)
    fast = FastPath(StandInRuntime(engine, 9000)).event(upd, users, chats)
    full = events_from_message(run(types.Message._parse(client, m, users, chats, replies=0)), 9000)
    assert (fast is not None) == expect_taken
    if fast is not None:
        assert [fast] == full
