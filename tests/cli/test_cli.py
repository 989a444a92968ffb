"""The CLI through Typer's runner: what an operator types and sees."""

import csv
import io
import json

from typer.testing import CliRunner

from tests.worlds import CHAT, Story
from tgsync_cli.cli import app

runner = CliRunner()


def seeded(tmp_path):
    store = f"file:{tmp_path}/store"
    story = Story().bot_added().then("message", user=2).then("leave", user=2).then("join", user=5)
    res = runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", store])
    assert res.exit_code == 0, res.output
    return store


def test_roster_as_json_csv_and_table(tmp_path):
    store = seeded(tmp_path)
    club = json.loads(runner.invoke(app, ["roster", str(CHAT), "--json", "--store", store]).stdout)
    assert {m["telegram_id"]: m["status"] for m in club["members"]} == {1: "active", 2: "left", 5: "active"}
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["roster", str(CHAT), "--csv", "--store", store]).stdout)))
    assert [(r["telegram_id"], r["role"], r["status"], r["source"]) for r in rows] == [
        ("1", "organizer", "active", "admin_import"), ("2", "member", "left", "message_activity"),
        ("5", "member", "active", "chat_member_event")]
    by_id = runner.invoke(app, ["roster", club["club_id"], "--store", store])
    assert by_id.exit_code == 0 and "Asel" in by_id.stdout


def test_clubs_lists_sync_figures(tmp_path):
    store = seeded(tmp_path)
    rows = json.loads(runner.invoke(app, ["clubs", "--json", "--store", store]).stdout)
    assert rows[0]["telegram_group_id"] == CHAT and rows[0]["active_members"] == 2
    assert rows[0]["sync"]["bot_is_admin"] is True


def test_unknown_club_is_a_one_line_error(tmp_path):
    res = runner.invoke(app, ["roster", "-100999", "--store", seeded(tmp_path)])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: no club for -100999") and res.stderr.count("\n") == 1


def test_a_broken_scenario_is_refused_with_its_json_path_and_nothing_runs(tmp_path):
    story = Story().bot_added().then("join", user=77)
    res = runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", f"file:{tmp_path}/s"])
    assert res.exit_code == 1
    assert "$.timeline[1].user: unknown user 77" in res.stderr
    assert not (tmp_path / "s").exists()  # not even an empty store was made


def test_usage_errors_exit_2():
    assert runner.invoke(app, ["roster"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_demo_shows_the_roster_and_what_the_bot_posted():
    res = runner.invoke(app, ["demo"])
    assert res.exit_code == 0, res.output
    assert "SRG Almaty Runners" in res.stdout and "What the bot posted" in res.stdout
    assert "db_ops" in res.stdout


def test_demo_json_is_the_simulate_format():
    doc = json.loads(runner.invoke(app, ["demo", "--json"]).stdout)
    assert doc["db_ops"] > 0 and doc["clubs"][0]["name"] == "SRG Almaty Runners"
