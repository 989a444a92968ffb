"""Reconcile safety (SPEC §3, issue 11): a listing that is not the whole group never marks anyone
left, and a change that would mark more than 20 % of a club left is shown, not applied, until the
operator says --yes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.ops.test_reconcile import LATER, active_roster, outage_story
from tests.worlds import connected as _ctx
from tests.worlds import play
from tests.worlds import CHAT
from tgsync_cli import ops
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.stores import open_store


class Capped:
    """Telegram counting more members than it lists (its 10,000 cap, or hidden members)."""

    def __init__(self, gw):
        self.gw = gw

    def __getattr__(self, name):
        return getattr(self.gw, name)

    def member_count(self, chat_id):
        return self.gw.member_count(chat_id) + 40


def test_an_incomplete_listing_marks_no_one_left_even_with_yes(store):
    gw = play(outage_story(), store)  # 3 left while the bot was offline
    out = ops.reconcile_clubs(store, Capped(gw), str(CHAT), False, LATER, yes=True)
    assert set(active_roster(store)) == {1, 2, 3, 4, 5}  # 5 added, 3 not marked left
    assert out.clubs[0].marked_left == [] and "fewer members" in out.clubs[0].reason


def test_a_mass_departure_is_shown_and_applied_only_with_yes(tmp_path, monkeypatch):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    gw = play(outage_story(), store)  # one of four active members left: 25 %
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: _ctx(gw))
    run = lambda *extra: CliRunner().invoke(app, ["reconcile", str(CHAT), "--store", uri, *extra])

    shown = run("--json")
    # held back, the store still counts 3 as active: one more than Telegram, over the default
    # threshold (0), so cron hears exit 3 until someone decides
    assert shown.exit_code == 3, shown.output
    club = json.loads(shown.stdout)["clubs"][0]
    assert club["drift"] == 1
    assert (club["held_back_left"], club["marked_left"], club["added"]) == (1, [], [5])
    assert "--yes" in club["reason"]
    store = open_store(uri)
    assert 3 in active_roster(store)  # not applied
    store.close()

    applied = run("--json", "--yes")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["clubs"][0]["marked_left"] == [3]
    store = open_store(uri)
    assert set(active_roster(store)) == {1, 2, 4, 5}
    store.close()


def test_exactly_a_fifth_of_the_club_leaving_is_applied_without_yes(store):
    """Only more than 20 % needs --yes: one of five active members gone is applied at once."""
    from tests.worlds import Story

    story = (Story({1: "creator", 2: "member", 3: "member", 4: "member", 5: "member"})
             .bot_added(as_="administrator")
             .then("message", user=2).then("message", user=3).then("message", user=4).then("message", user=5)
             .then("bot_offline").then("leave", user=3).then("bot_online"))
    gw = play(story, store)
    assert set(active_roster(store)) == {1, 2, 3, 4, 5}

    out = ops.reconcile_clubs(store, gw, str(CHAT), False, LATER)

    club = out.clubs[0]
    assert (club.marked_left, club.held_back_left) == ([3], 0)
    assert set(active_roster(store)) == {1, 2, 4, 5}
