"""`stats` as an organizer reads it: weeks named by the Monday they start, joins by invite link
and by inviter on screen (not only in --json), and a window with nothing in it says where the
club's last change is and which --until shows it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.worlds import CHAT, Story
from tgsync_cli.cli import app

runner = CliRunner()


@pytest.fixture
def season(tmp_path, monkeypatch):
    """Asel shares the "spring" link in March 2025; two people join through it."""
    monkeypatch.setenv("COLUMNS", "100")
    story = Story({1: "creator", 2: "member"}).bot_added()
    story.then("join", user=5, link="spring", link_by=1).then("join", user=6, link="spring", link_by=1)
    store = f"file:{tmp_path}/store"
    assert runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", store]).exit_code == 0
    return store


def test_a_past_season_viewed_today_says_which_until_to_use(season):
    res = runner.invoke(app, ["stats", str(CHAT), "--store", season])
    assert res.exit_code == 0, res.output
    said = " ".join(res.stdout.split())
    assert "nothing happened in these 12 weeks" in said
    assert "the club's last change was on 2025-03-01: try --until 2025-03-01" in said
    shown = runner.invoke(app, ["stats", str(CHAT), "--until", "2025-03-01", "--store", season])
    assert "nothing happened" not in shown.stdout


def test_weeks_are_dates_and_inviters_are_on_screen(season):
    res = runner.invoke(app, ["stats", str(CHAT), "--until", "2025-03-01", "--store", season])
    out = " ".join(res.stdout.split())
    assert "2025-02-24" in out and "2025-W09" not in out  # the Monday of the week of 1 March
    assert "Joins in these weeks by invite link and by inviter" in out
    assert "invite link │ spring │ 2" in out and "inviter │ 1 Asel │ 2" in out
    doc = json.loads(runner.invoke(app, ["stats", str(CHAT), "--until", "2025-03-01", "--json",
                                         "--store", season]).stdout)
    assert doc["weeks"][-1]["week_start"] == "2025-02-24" and doc["weeks"][-1]["joins_by_inviter"] == {"1": 2}
