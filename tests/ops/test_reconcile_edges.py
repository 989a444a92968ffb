"""`reconcile` where Telegram's answer is incomplete, and what cron sees when clubs disagree.

Telegram is the simulator's world as a story left it, altered where real Telegram differs
(it lists at most 10,000 members of a supergroup, however many it counts).
"""

import json

from typer.testing import CliRunner

from tests.worlds import CHAT, Altered, Story, connected, play
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.core.errors import TelegramUnavailable
from tgsync_cli.stores import open_store

WRITERS = (2, 3, 4, 5, 6)


def busy_club() -> Story:
    """Everyone in the group wrote, so the store knows all six people as active members."""
    story = Story({1: "creator", 2: "member", 3: "member", 4: "member", 5: "member", 6: "member"})
    story = story.bot_added(as_="administrator")
    for uid in WRITERS:
        story.then("message", user=uid)
    return story


def capped(gw, listed: int):
    """Telegram's listing stops after `listed` members while its count still says all of them."""
    def pages(chat_id):
        everyone = [m for page in gw.iter_member_pages(chat_id) for m in page]
        return iter([everyone[:listed]])
    return Altered(gw, iter_member_pages=pages)


def reconcile(tmp_path, monkeypatch, story, gateway=lambda gw: gw, *args):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    gw = play(story, store)
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gateway(gw)))
    res = CliRunner().invoke(app, ["reconcile", *args, "--json", "--store", uri])
    roster = CliRunner().invoke(app, ["roster", str(CHAT), "--json", "--store", uri])
    members = {m["telegram_id"]: m["status"] for m in json.loads(roster.stdout)["members"]}
    return res, members


def test_a_listing_shorter_than_telegram_s_count_marks_nobody_left(tmp_path, monkeypatch):
    res, members = reconcile(tmp_path, monkeypatch, busy_club(), lambda gw: capped(gw, 3),
                             str(CHAT), "--threshold", "10")
    assert res.exit_code == 0, res.output
    [club] = json.loads(res.stdout)["clubs"]
    assert club["marked_left"] == [] and club["listed"]
    assert "fewer members than it counts" in club["reason"]
    assert members == {1: "active", 2: "active", 3: "active", 4: "active", 5: "active", 6: "active"}


def test_a_whole_listing_still_marks_the_unlisted_left(tmp_path, monkeypatch):
    """The same club, where the listing is whole: those Telegram no longer lists have left (two of
    six is over the 20 % that SPEC §3 holds back, so the operator confirms with --yes)."""
    story = busy_club().then("bot_offline").then("leave", user=5).then("leave", user=6).then("bot_online")
    res, members = reconcile(tmp_path, monkeypatch, story, lambda gw: gw, str(CHAT), "--threshold", "10",
                             "--yes")
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(res.stdout)["clubs"][0]["marked_left"]) == [5, 6]
    assert (members[5], members[6]) == ("left", "left")


def test_all_with_one_club_failing_and_another_over_the_threshold_exits_1_not_3(tmp_path, monkeypatch):
    """An error outranks drift: cron must see that a club was not reconciled at all."""
    story = Story({1: "creator", 2: "member", 3: "member"}).bot_added(as_="member")  # drift 2
    story.scenario["chats"].append({"id": -1002, "type": "supergroup", "title": "Trail Crew",
                                    "members": [{"user": 6, "status": "creator"}]})
    story.then("add_bot", chat=-1002, by=6, as_="administrator")

    def count(chat_id, gw):
        if chat_id == -1002:
            raise TelegramUnavailable("Telegram is not reachable (counting members)")
        return gw.member_count(chat_id)
    res, _ = reconcile(tmp_path, monkeypatch, story,
                       lambda gw: Altered(gw, member_count=lambda chat_id: count(chat_id, gw)),
                       "--all", "--threshold", "0")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["over_threshold"] == [CHAT]  # the drift is still reported
    assert [c["error"] for c in out["clubs"] if c["chat_id"] == -1002] == [
        "Telegram is not reachable (counting members)"]
    assert "error: -1002: Telegram is not reachable" in res.stderr
