"""The two adapters agree (issue 11): every update the simulator delivers in a scenario, rendered
as Bot API JSON and as the raw MTProto update pyrogram parses, yields the same events.

Scenarios: the bundled demo, every shared acceptance scenario, and the edge scenarios. Updates
Telegram has no MTProto form for (a ban lifted in a basic group, which has no ban list) are
counted, not compared; they must stay rare.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.mtproto_render import NotRepresentable, Renderer, normalise_ids
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.events import ChatRef, DeepLinkStart, MemberState, MemberStatusChanged, Person
from tgsync_cli.core.rules import parse_iso
from tgsync_cli.runtime.wiring import make_engine
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.sources.botapi import parse_update
from tgsync_cli.sources.scenario import load_scenario
from tgsync_cli.stores import open_store

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "scenarios"
SCENARIOS = ([ROOT / "tgsync_cli" / "data" / "first-week.json"]
             + sorted(p for p in SHARED.glob("*.json") if not p.name.endswith(".expected.json"))
             + sorted(p for p in (ROOT / "tests" / "core" / "scenarios").glob("*.json")
                      if not p.name.endswith(".expected.json")))


class Recording(Simulator):
    """The simulator, keeping a copy of every update it delivers."""

    def __init__(self, *args, **kwargs):
        self.updates = []
        super().__init__(*args, **kwargs)

    def _deliver(self, update):
        super()._deliver(update)
        if "update_id" in update:  # delivered, not lost to an outage
            self.updates.append(copy.deepcopy(update))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_update_means_the_same_on_both_paths(path, client):
    scenario = normalise_ids(load_scenario(path))
    store = open_store("memory:")
    sim = Recording(scenario, lambda gw: make_engine(store, gw, cache=MemoryMemberCache()))
    sim.run()
    render = Renderer(client, scenario["bot"]["id"])
    compared = unrepresentable = 0
    for update in sim.updates:
        bot_api = parse_update(update)
        try:
            mtproto = render.update(update)
        except NotRepresentable:
            unrepresentable += 1
            continue
        assert mtproto == bot_api, f"update {update['update_id']}: {update}"
        compared += 1
    assert compared >= 2 and unrepresentable <= compared // 10


# -- the two disagreements the issue names ------------------------------------------------------------
T = 1733047200
AT = parse_iso("2024-12-01T10:00:00Z")


def private_text(client, text):
    upd = {"update_id": 1, "message": {"message_id": 1, "date": T, "text": text,
                                        "chat": {"id": 2, "type": "private", "first_name": "Ivan"},
                                        "from": {"id": 2, "is_bot": False, "first_name": "Ivan"}}}
    return parse_update(upd), Renderer(client, 9000).update(copy.deepcopy(upd))


@pytest.mark.parametrize("text, payload", [
    ("/start join_-1001006 extra", "join_-1001006 extra"),  # then refused as malformed, on both
    ("/START", None), ("/Start join_-1001006", "join_-1001006"), ("/start@aydarun_bot", None)])
def test_start_is_read_the_same_way_on_both_paths(client, text, payload):
    bot_api, mtproto = private_text(client, text)
    assert bot_api == mtproto == [DeepLinkStart(Person(2, first_name="Ivan"), payload, AT)]


def test_other_private_text_is_nothing_on_both_paths(client):
    assert private_text(client, "/starting") == ([], [])


def test_a_removal_notice_with_no_sender_means_kicked_on_both_paths(client):
    """MTProto shows an anonymous admin's removal with no sender; a leave is always the leaver's."""
    chat = {"id": -1000000001006, "type": "supergroup", "title": "SRG"}
    upd = {"update_id": 1, "message": {"message_id": 3, "date": T, "chat": chat,
                                        "left_chat_member": {"id": 2, "is_bot": False, "first_name": "Ivan"}}}
    bot_api, mtproto = parse_update(upd), Renderer(client, 9000).update(copy.deepcopy(upd))
    assert bot_api == mtproto == [MemberStatusChanged(
        ChatRef(-1000000001006, "supergroup", "SRG"), Person(2, first_name="Ivan"),
        MemberState("kicked"), AT, via="service_message")]
