"""Every screen prints what Telegram users typed as text: never as terminal control, markup or
emoji codes, never reordered by a bidirectional override, and never longer than 300 characters.

Given a group titled with a clear-screen sequence and members whose names set colours, ring
the bell, retitle the window, carry `:smile:` or a right-to-left override, plus one whose name
is 10,000 characters, and a join through an invite link named with markup and a blink code:
`history`, `member` and `stats` show all of it literally, as `roster` and `clubs` do.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.worlds import CHAT, Story
from tgsync_cli.cli import app
from tgsync_cli.cli.render import CELL_LIMIT, plain

runner = CliRunner()
TITLE = "Club\x1b[2J"
RED = "\x1b[31mRED\x1b[0m\x1b]0;pwned\x07"
SMILE = "Smiley :smile:"
RTL = "evil\u202egnp.exe"
HUGE = "Z" * 10_000
LINK = "[red]spring[/]\x1b[5m"


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # whole cells on one line, so they can be searched


def hostile_store(tmp_path) -> str:
    story = Story({1: "creator", 2: "member", 3: "member", 4: "member"}, title=TITLE)
    names = {2: RED, 3: SMILE, 4: RTL, 5: HUGE}
    for u in story.scenario["users"]:
        if u["id"] in names:
            u["first_name"] = names[u["id"]]
    story.bot_added().then("message", user=2).then("message", user=4).then("message", user=3)
    story.then("leave", user=3)
    story.then("join", user=5, link=LINK, link_by=1)
    store = f"file:{tmp_path}/store"
    res = runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", store])
    assert res.exit_code == 0, res.output
    return store


def _assert_literal(out: str) -> None:
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "😄" not in out


def test_history_member_and_stats_show_control_characters_instead_of_obeying_them(tmp_path):
    store = hostile_store(tmp_path)
    hist = runner.invoke(app, ["history", str(CHAT), "--store", store])
    stats = runner.invoke(app, ["stats", str(CHAT), "--until", "2025-03-10", "--store", store])
    red = runner.invoke(app, ["member", "2", "--store", store])
    rtl = runner.invoke(app, ["member", "4", "--store", store])
    for res in (hist, stats, red, rtl):
        assert res.exit_code == 0, res.output
        _assert_literal(res.stdout)
    assert "Club\\x1b[2J" in hist.stdout and "Club\\x1b[2J" in stats.stdout
    assert "\\x1b[31mRED\\x1b[0m\\x1b]0;pwned\\x07" in red.stdout
    assert "[red]spring[/]\\x1b[5m" in hist.stdout  # the invite link, markup and all
    assert "[red]spring[/]\\x1b[5m" in stats.stdout  # joins by link
    assert "evil\\u202egnp.exe" in rtl.stdout


def test_emoji_codes_stay_text_and_a_huge_name_is_cut(tmp_path):
    store = hostile_store(tmp_path)
    hist = runner.invoke(app, ["history", str(CHAT), "--store", store])
    smile = runner.invoke(app, ["member", "3", "--store", store])
    huge = runner.invoke(app, ["member", "5", "--store", store])
    assert ":smile:" in hist.stdout and ":smile:" in smile.stdout
    _assert_literal(hist.stdout + smile.stdout)
    assert huge.exit_code == 0, huge.output
    assert "Z" * CELL_LIMIT in huge.stdout and "Z" * (CELL_LIMIT + 1) not in huge.stdout
    assert "Z" * (CELL_LIMIT + 1) not in hist.stdout


def test_roster_and_clubs_show_the_same_names_the_same_way(tmp_path):
    store = hostile_store(tmp_path)
    roster = runner.invoke(app, ["roster", str(CHAT), "--store", store])
    clubs = runner.invoke(app, ["clubs", "--store", store])
    _assert_literal(roster.stdout + clubs.stdout)
    assert "evil\\u202egnp.exe" in roster.stdout and "Club\\x1b[2J" in clubs.stdout


def test_one_helper_spells_out_every_kind_of_control_character():
    shown = plain("a\tb\nc\x9bd\x7fe\u2066f").plain
    assert shown == "a\\x09b\\x0ac\\x9bd\\x7fe\\u2066f"


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_log_line_naming_a_hostile_title_shows_it_as_text(capsys, json_lines):
    import logging

    from tgsync_cli.runtime.logs import configure

    configure(json_lines=json_lines)
    logging.getLogger("tgsync.serve").warning("joined %s", TITLE + RTL)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\u202e" not in err and "\\x1b[2J" in err
    configure(json_lines=False, level="warning", library_level="critical", compact=True)
