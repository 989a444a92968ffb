"""`policy`, `remove`, and what `clubs`, `history` and `stats` show of join requests and the app's
requests, on a store a simulated season left behind."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app

SEASON = Path(__file__).resolve().parents[1] / "core" / "scenarios" / "roster-gated-season.json"
CHAT = "-1002600"


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    uri = f"file:{tmp_path_factory.mktemp('season')}/store"
    res = CliRunner().invoke(app, ["simulate", str(SEASON), "--store", uri])
    assert res.exit_code == 0, res.output
    return uri


def run(*args):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})


def test_policy_is_kept_in_the_club_and_shown_by_clubs(tmp_path):
    uri = f"file:{tmp_path}/s"
    assert run("simulate", str(SEASON), "--store", uri).exit_code == 0
    res = run("policy", "--join", "open", "--store", uri, CHAT)
    assert res.exit_code == 0 and "join policy open" in res.stdout
    clubs = json.loads(run("clubs", "--json", "--store", uri).stdout)
    assert clubs[0]["join_policy"] == "open"
    res = run("policy", "--join", "roster", "--decline-after", "14", "--json", "--store", uri, CHAT)
    assert json.loads(res.stdout)["join_policy"] == "roster"
    assert json.loads(res.stdout)["decline_after_days"] == 14
    assert "answered by the roster in: -1002600" in run("clubs", "--store", uri).stdout
    assert "join_policy" in run("clubs", "--csv", "--store", uri).stdout.splitlines()[0]


def test_a_bad_policy_is_a_usage_error_that_changes_nothing(season):
    res = run("policy", "--join", "members-only", "--store", season, CHAT)
    assert res.exit_code == 2 and "open or roster" in res.output
    assert json.loads(run("clubs", "--json", "--store", season).stdout)[0]["join_policy"] == "roster"


def test_remove_writes_the_request_a_serve_applies(tmp_path):
    uri = f"file:{tmp_path}/s"
    assert run("simulate", str(SEASON), "--store", uri).exit_code == 0
    res = run("remove", "--ban", "--by", "coach", "--json", "--store", uri, CHAT, "2")
    assert res.exit_code == 0, res.output
    req = json.loads(res.stdout)
    assert (req["action"], req["state"], req["telegram_id"]) == ("ban", "pending", 2)
    hist = json.loads(run("history", "--json", "--store", uri, CHAT).stdout)
    mine = [r for r in hist["requests"] if r["telegram_id"] == 2]
    assert mine and mine[0]["requested_by"] == "coach"


def test_remove_of_an_unknown_club_is_one_line_and_writes_nothing(season):
    res = run("remove", "--store", season, "-1009999", "5")
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "no club" in res.output


def test_history_shows_approvals_declines_and_removals_with_who_asked(season):
    hist = json.loads(run("history", "--json", "--store", season, CHAT).stdout)
    asked = {(r["telegram_id"], r["action"]): (r["requested_by"], r["outcome"]) for r in hist["requests"]}
    assert asked[(6, "remove")] == (3, "removed")
    assert asked[(7, "ban")] == (1, "banned")
    assert asked[(4, "approve")] == ("roster", "approved")
    assert asked[(9, "approve")][1] == "gone"  # declined by an admin
    removal = [e for e in hist["entries"] if e["telegram_id"] == 6 and e["source"] == "app_request"]
    assert [e["actor"] for e in removal] == [3, 3]
    text = run("history", "--store", season, CHAT).stdout
    assert "Requests" in text and "removed" in text


def test_stats_counts_join_requests_approved_declined_and_pending_a_week(season):
    view = json.loads(run("stats", "--json", "--weeks", "1", "--until", "2024-12-07", "--store",
                          season, CHAT).stdout)
    [week] = view["weeks"]
    assert (week["requests_approved"], week["requests_declined"], week["requests_pending"]) == (4, 1, 1)
    assert "join requests per week" in run("stats", "--weeks", "1", "--until", "2024-12-07",
                                           "--store", season, CHAT).stdout
