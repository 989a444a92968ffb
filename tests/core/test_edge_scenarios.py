"""Issue 11's edges as scenario files (SPEC §5): each NAME.json in ./scenarios runs through
`tgsync simulate --json`, and the clubs and members are exactly NAME.expected.json's — no club
more (a channel, a private chat, a second club after a migration), no member more."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app

HERE = Path(__file__).parent / "scenarios"
PAIRS = sorted(HERE.glob("*.expected.json"))


def rosters(clubs):
    return {c["telegram_group_id"]: {m["telegram_id"]: (m["role"], m["status"], m["source"])
                                     for m in c["members"]} for c in clubs}


@pytest.mark.parametrize("expected_path", PAIRS, ids=lambda p: p.name.replace(".expected.json", ""))
def test_edge_scenario_ends_in_exactly_the_expected_clubs(expected_path):
    scenario = expected_path.with_name(expected_path.name.replace(".expected.json", ".json"))
    res = CliRunner().invoke(app, ["simulate", str(scenario), "--json", "--store", "memory:"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert rosters(got["clubs"]) == rosters(json.loads(expected_path.read_text())["clubs"])
    group_posts = [s for s in got["sent"] if s["chat"] < 0]
    assert len(group_posts) <= len(got["clubs"])  # one welcome per club at most, none elsewhere
