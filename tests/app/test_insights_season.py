"""A season of a club told back by `history`, `member` and `stats` (issue 14).

Given a basic group whose two organizers share invite links, when people join through them, one
is kicked, an organizer is demoted, the group becomes a supergroup, and a member leaves while the
bot is down (reconcile finds it), then the membership log, one person's view and the weekly
figures tell exactly that story."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app
from tests.worlds import Story

WEEK = 60 * 24 * 7
OLD, NEW = -1500, -1001500
runner = CliRunner()


def season() -> Story:
    s = Story({1: "creator", 2: "administrator", 3: "member", 4: "member"}, chat_type="group", chat=OLD,
              title="Run [/] Club")
    s.bot_added()                                                            # 2025-W09
    s.then("join", user=5, link="Asel's spring link", link_by=1)
    s.then("join", user=6, link="Bolat's link", link_by=2)
    s.then("message", user=3, text="hi")
    s.then("join", user=7, minutes=WEEK, link="Asel's spring link", link_by=1)  # W10
    s.then("message", user=5, text="run?")
    s.then("kick", user=6, by=1, minutes=WEEK)                               # W11
    s.then("demote", user=2, by=1)
    s.then("migrate", to=NEW, minutes=60)
    s.then("message", user=7, chat=NEW, text="new group!")
    s.then("message", user=5, chat=NEW, text="me too")
    s.then("bot_offline", minutes=WEEK)                                      # W12
    s.then("leave", user=3, chat=NEW)
    s.then("bot_online")
    s.then("reconcile", chat=NEW, yes=True)
    return s


@pytest.fixture
def store_uri(tmp_path):
    uri = f"file:{tmp_path}/store"
    res = runner.invoke(app, ["simulate", str(season().write(tmp_path)), "--store", uri, "--json"])
    assert res.exit_code == 0, res.output
    return uri


def cli_json(*args):
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_history_tells_the_season_in_order_with_links_actors_and_routes(store_uri):
    h = cli_json("history", str(NEW), "--store", store_uri)
    told = [(e["telegram_id"], e["change"], e["source"], e["actor"], e["invite_link"], e["invited_by"])
            for e in h["entries"]]
    assert told == [
        (1, "joined", "admin_import", None, None, None),
        (2, "joined", "admin_import", None, None, None),
        (5, "joined", "chat_member_event", 5, "Asel's spring link", 1),
        (6, "joined", "chat_member_event", 6, "Bolat's link", 2),
        (3, "joined", "message_activity", None, None, None),
        (7, "joined", "chat_member_event", 7, "Asel's spring link", 1),
        (6, "kicked", "chat_member_event", 1, None, None),
        (2, "demoted", "chat_member_event", 1, None, None),
        (4, "joined", "member_import", None, None, None),  # never wrote: reconcile's listing adds them
        (3, "left", "member_import", None, None, None),
    ]
    # the club is the same before and after the migration: the old id finds it too
    assert cli_json("history", str(OLD), "--store", store_uri)["entries"] == h["entries"]


def test_history_since_a_date_shows_only_later_changes(store_uri):
    h = cli_json("history", str(NEW), "--since", "2025-03-15", "--store", store_uri)
    assert [(e["telegram_id"], e["change"]) for e in h["entries"]] == [(6, "kicked"), (2, "demoted"), (4, "joined"),
                                                                   (3, "left")]


def test_member_shows_one_person_across_the_club_with_their_own_log(store_uri):
    m = cli_json("member", "6", "--store", store_uri)
    assert m["account"]["first_name"] == "Zere"
    assert [(x["telegram_group_id"], x["status"], x["source"], x["invite_link"], x["invited_by"])
            for x in m["memberships"]] == [(NEW, "kicked", "chat_member_event", "Bolat's link", 2)]
    assert [(e["change"], e["actor"]) for e in m["log"]] == [("joined", 6), ("kicked", 1)]


def test_stats_count_each_week_and_the_reconcile_drift(store_uri):
    s = cli_json("stats", str(NEW), "--weeks", "4", "--until", "2025-03-23", "--store", store_uri)
    weeks = {w["week"]: w for w in s["weeks"]}
    assert list(weeks) == ["2025-W09", "2025-W10", "2025-W11", "2025-W12"]
    row = {k: [(w["joined"], w["left"], w["kicked"], w["net"], w["active_writers"]) for w in weeks.values()][i]
           for i, k in enumerate(weeks)}
    assert row == {"2025-W09": (5, 0, 0, 5, 1),   # 1 and 2 imported, 5 and 6 by link, 3 wrote
                   "2025-W10": (1, 0, 0, 1, 1),   # 7 by Asel's link; 5 wrote
                   "2025-W11": (0, 0, 1, -1, 2),  # 6 kicked; 7 and 5 wrote in the new supergroup
                   "2025-W12": (1, 1, 0, 0, 0)}   # reconcile: 3 left while the bot was down, 4 listed
    assert weeks["2025-W09"]["joins_by_link"] == {"Asel's spring link": 1, "Bolat's link": 1}
    assert weeks["2025-W10"]["joins_by_inviter"] == {"1": 1}
    assert weeks["2025-W12"]["drift"] == 0 and weeks["2025-W11"]["drift"] is None


def test_the_terminal_shows_hostile_names_literally(store_uri):
    res = runner.invoke(app, ["stats", str(NEW), "--weeks", "4", "--until", "2025-03-23", "--store", store_uri])
    assert res.exit_code == 0, res.output
    assert "Run [/] Club" in res.output and "Asel's spring" in res.output
    res = runner.invoke(app, ["history", str(NEW), "--store", store_uri])
    assert res.exit_code == 0, res.output
    assert "Run [/] Club" in res.output


def test_stats_png_is_a_png_of_the_promised_size(store_uri, tmp_path):
    pytest.importorskip("matplotlib")
    from tests.cli.test_stats_png import png_size
    from tgsync_cli.cli.plot import HEIGHT_PX, WIDTH_PX

    out = tmp_path / "season.png"
    res = runner.invoke(app, ["stats", str(NEW), "--until", "2025-03-23", "--png", str(out), "--store", store_uri])
    assert res.exit_code == 0, res.output
    assert png_size(out) == (WIDTH_PX, HEIGHT_PX)


def test_an_unknown_person_is_one_line(store_uri):
    res = runner.invoke(app, ["member", "424242", "--store", store_uri])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: no account or membership for telegram id 424242")


def test_the_insight_commands_never_create_a_store(tmp_path):
    missing = tmp_path / "nowhere"
    for args in (["history", str(NEW)], ["member", "6"], ["stats", str(NEW)]):
        res = runner.invoke(app, [*args, "--store", f"file:{missing}"])
        assert res.exit_code == 1 and "no store at" in res.stderr, res.output
    assert not missing.exists()
