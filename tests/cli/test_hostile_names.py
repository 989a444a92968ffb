"""Names are chosen by Telegram users: whatever they type is shown as typed, never as markup.

Given a group titled `Run [/] Club` with members `Asel [/]` and `[reverse]Cyrus[/reverse]`,
every screen an operator meets (simulate, roster, clubs, reconcile, doctor, the start-up report,
the member listing) prints those names literally and exits as it would for plain names.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from tgsync_cli import app as core
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.cli import render
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.stores import open_store
from tests.worlds import CHAT, Story

runner = CliRunner()
TITLE = "Run [/] Club"
ASEL = "Asel [/]"
CYRUS = "[reverse]Cyrus[/reverse]"
DARIGA = "\x1b[31mDariga\x1b[0m"  # a terminal escape sequence: shown, never obeyed
API_HASH = "0123456789abcdef0123456789abcdef"
TOKEN = "8000:AAH_thisIsAFakeBotTokenForTests0123"


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # whole names on one line, so they can be searched


def hostile_story() -> Story:
    story = Story({1: "creator", 2: "member", 3: "member"}, title=TITLE)
    for u in story.scenario["users"]:
        if u["id"] == 1:
            u["first_name"] = ASEL
        if u["id"] == 3:
            u["first_name"] = CYRUS
            u["username"] = "cyrus_runs"
        if u["id"] == 4:
            u["first_name"] = DARIGA
    return story.bot_added().then("message", user=3).then("leave", user=2).then("join", user=4)


def seeded(tmp_path):
    store = f"file:{tmp_path}/store"
    res = runner.invoke(app, ["simulate", str(hostile_story().write(tmp_path)), "--store", store])
    assert res.exit_code == 0, res.output
    return store, res


def test_simulate_shows_hostile_names_and_titles_as_typed(tmp_path):
    _, res = seeded(tmp_path)
    assert ASEL in res.stdout and CYRUS in res.stdout
    assert TITLE in res.stdout  # table title, and inside the welcome post


def test_roster_and_clubs_show_them_as_typed(tmp_path):
    store, _ = seeded(tmp_path)
    roster = runner.invoke(app, ["roster", str(CHAT), "--store", store])
    clubs = runner.invoke(app, ["clubs", "--store", store])
    assert roster.exit_code == 0 and clubs.exit_code == 0, roster.output + clubs.output
    assert ASEL in roster.stdout and f"{CYRUS} @cyrus_runs" in roster.stdout and TITLE in roster.stdout
    assert "\\x1b[31mDariga\\x1b[0m" in roster.stdout and "\x1b" not in roster.stdout
    assert TITLE in clubs.stdout


def test_reconcile_and_doctor_show_the_title_as_typed(tmp_path, monkeypatch):
    store_dir = tmp_path / "store"
    store = open_store(f"file:{store_dir}")
    sim = Simulator(hostile_story().scenario, lambda gw: core.make_engine(store, gw))
    sim.run()
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: _ctx(sim.gateway))
    rec = runner.invoke(app, ["reconcile", str(CHAT), "--store", f"file:{store_dir}"])
    assert rec.exit_code == 0, rec.output
    assert TITLE in rec.stdout

    cfg = tmp_path / "tgsync.toml"
    cfg.write_text(f'[store]\nuri = "file:{store_dir}"\n[telegram]\napi_id = 1\n'
                   f'api_hash = "{API_HASH}"\nbot_token = "{TOKEN}"\n')
    os.chmod(cfg, 0o600)
    doc = runner.invoke(app, ["doctor", "--config", str(cfg)])
    assert f"club {TITLE} ({CHAT})" in doc.stdout, doc.output


def test_serve_start_up_report_and_member_listing_show_them_as_typed(capsys):
    from tgsync_cli.cli.live import _show_startup, _summary_table
    from tgsync_cli.core.engine import ClubInfo
    from tgsync_cli.runtime.serve import StartupReport

    club = ClubInfo(club_id="club_x", chat_id=CHAT, name=TITLE, bot_present=True, bot_is_admin=False)
    _show_startup(StartupReport(8000, "[bold]bot[/]", True, [club]))
    out = capsys.readouterr()
    assert TITLE in out.out and "@[bold]bot[/]" in out.out
    assert TITLE in out.err  # route-4 warning names the club where the bot is not an admin

    class Summary:
        name, chat_id, club_id, club_created = TITLE, CHAT, "club_x", False
        added = updated = unchanged = skipped = 0

    render.console.print(_summary_table(f"Members of {TITLE}", Summary()))
    assert f"Members of {TITLE}" in capsys.readouterr().out


def test_a_long_name_is_cut_not_dumped():
    huge = "x" * 100_000
    shown = render.plain(huge)
    assert len(shown.plain) <= render.CELL_LIMIT + 1 and shown.plain.endswith("…")


def test_ids_and_times_are_whole_at_80_columns(tmp_path, monkeypatch):
    store, _ = seeded(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    rows = json.loads(runner.invoke(app, ["clubs", "--json", "--store", store]).stdout)
    clubs = runner.invoke(app, ["clubs", "--store", store])
    roster = runner.invoke(app, ["roster", str(CHAT), "--store", store])
    assert rows[0]["club_id"] in clubs.stdout and str(CHAT) in clubs.stdout
    assert "2025-03-01T07:02:00Z" in roster.stdout  # the time Cyrus wrote, whole


@contextmanager
def _ctx(gw):
    yield gw
