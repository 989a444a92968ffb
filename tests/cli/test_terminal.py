"""Small things an operator meets at the terminal: settings typos, unsafe config files, pipes,
library warnings, filters and the simulator's store."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app
from tgsync_cli.runtime.config import load_settings
from tests.worlds import CHAT, Story

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def seeded(tmp_path) -> str:
    store = f"file:{tmp_path}/store"
    story = (Story({1: "creator", 2: "member", 3: "member"}).bot_added()
             .then("message", user=2).then("leave", user=2).then("join", user=5, minutes=60 * 24))
    res = runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", store])
    assert res.exit_code == 0, res.output
    return store


# -- settings -------------------------------------------------------------------------------------
def test_a_misspelt_setting_in_the_environment_is_warned_about_not_ignored(tmp_path):
    said = []
    load_settings(env={"TGSYNC_STOR_URI": "file:/elsewhere", "TGSYNC_TEST_REDIS_URL": "x"}, warn=said.append)
    assert said == ["warning: TGSYNC_STOR_URI is not a tgsync setting and is ignored "
                    "(did you mean TGSYNC_STORE_URI?)"]


def test_log_level_is_read_in_any_case():
    assert load_settings(env={"TGSYNC_LOG_LEVEL": "INFO"}).log.level == "info"


def test_the_example_config_names_every_setting():
    from tgsync_cli.runtime.config import SCHEMA

    text = (ROOT / "config.example.toml").read_text()
    for section, key in SCHEMA:
        assert f"\n{key} =" in text and f"[{section}]" in text, f"{section}.{key}"


@pytest.mark.parametrize("mode,secrets,verdict", [
    (0o602, False, "fail"), (0o620, True, "fail"), (0o644, True, "fail"), (0o644, False, "ok"),
    (0o600, True, "ok")])
def test_doctor_and_every_command_give_the_same_verdict_on_a_config_file(bare, mode, secrets, verdict):
    cfg = bare / "tgsync.toml"
    cfg.write_text('[store]\nuri = "memory:"\n' + ('[telegram]\nbot_token = "1:x"\n' if secrets else ""))
    os.chmod(cfg, mode)
    command = runner.invoke(app, ["clubs"])
    doctor = json.loads(runner.invoke(app, ["doctor", "--json"]).stdout)
    level = {c["name"]: c["level"] for c in doctor}["config permissions"]
    assert level == verdict
    assert ("warning: tgsync.toml" in command.stderr) == (verdict == "fail"), command.stderr
    if mode & 0o022:
        assert "can be changed by other users" in command.stderr


# -- pipes and library warnings ---------------------------------------------------------------------
def test_output_into_a_closed_pipe_stops_quietly(tmp_path):
    store = seeded(tmp_path)
    script = (f"{sys.executable} -m tgsync_cli clubs --json --store {store} | head -c 1 >/dev/null; "
              f"{sys.executable} -m tgsync_cli roster {CHAT} --csv --store {store} | head -c 1 >/dev/null")
    res = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert "BrokenPipe" not in res.stderr and "internal error" not in res.stderr, res.stderr
    assert "Exception ignored" not in res.stderr


def test_a_library_warning_is_one_line(bare):
    """pymongo warns about unknown URI options with a source excerpt; it reaches us as one line."""
    code = ("import sys, warnings\n"
            "from tgsync_cli.cli import main\n"
            "sys.argv = ['tgsync', 'roster', '-1500', '--store', 'mongodb://127.0.0.1:1/?foo=bar']\n"
            "main()\n")
    env = {**os.environ, "TGSYNC_STORE_DATABASE": "x"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=bare, env=env)
    warned = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and warned[0].startswith("warning: pymongo: Unknown option"), res.stderr
    assert "warnings.warn" not in res.stderr and "site-packages" not in res.stderr


# -- filters and CSV -------------------------------------------------------------------------------
def test_roster_filters_by_status_role_source_and_date(tmp_path):
    store = seeded(tmp_path)
    ids = lambda *a: [m["telegram_id"] for m in json.loads(runner.invoke(
        app, ["roster", str(CHAT), "--json", "--store", store, *a]).stdout)["members"]]
    assert ids() == [1, 2, 5]
    assert ids("--status", "left") == [2]
    assert ids("--role", "organizer") == [1]
    assert ids("--source", "chat_member_event") == [5]
    assert ids("--since", "2025-03-02") == [5]
    assert ids("--status", "active", "--since", "2025-03-02T00:00:00Z") == [5]


def test_clubs_as_csv(tmp_path):
    store = seeded(tmp_path)
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, ["clubs", "--csv", "--store", store]).stdout)))
    assert len(rows) == 1
    assert rows[0]["telegram_group_id"] == str(CHAT) and rows[0]["active_members"] == "2"
    assert rows[0]["bot_is_admin"] == "True"


# -- stores ----------------------------------------------------------------------------------------
def test_read_only_commands_never_create_a_store(bare):
    for args in (["clubs"], ["roster", "-1500"], ["clubs", "--store", "file:nested/dir/x"],
                 ["forget", "5", "--yes"], ["reconcile", "--all"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and res.stderr.startswith("error: no store at file:"), (args, res.stderr)
    assert list(bare.iterdir()) == []


def test_a_file_where_the_store_directory_should_be_is_named(bare):
    (bare / "store").write_text("not a store")
    story = Story().bot_added().write(bare)
    for args in (["clubs", "--store", "file:store"], ["simulate", str(story), "--store", "file:store"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and res.stderr.startswith("error: store file:store is damaged: "
                                                            "store is a file, not the store's directory"), res.stderr


def test_a_damaged_store_is_named_with_the_cause(tmp_path):
    store = seeded(tmp_path)
    for f in (tmp_path / "store").iterdir():  # the SQLite file and its WAL/shared-memory files
        f.write_bytes(b"\x00garbage" * 100)
    res = runner.invoke(app, ["clubs", "--store", store])
    assert res.exit_code == 1
    assert res.stderr == f"error: store {store} is damaged or not a tgsync store (file is not a database)\n"


def test_an_empty_store_says_how_to_add_a_club(tmp_path):
    res = runner.invoke(app, ["simulate", str(Story().write(tmp_path)), "--store", f"file:{tmp_path}/s"])
    assert res.exit_code == 0
    res = runner.invoke(app, ["clubs", "--store", f"file:{tmp_path}/s"])
    assert "no clubs" in res.stdout and "import-admins" in res.stdout


def test_simulate_leaves_the_configured_store_alone(bare):
    (bare / "tgsync.toml").write_text('[store]\nuri = "file:./production"\n')
    story = Story().bot_added().then("join", user=5)
    res = runner.invoke(app, ["simulate", str(story.write(bare))])
    assert res.exit_code == 0 and "Sunday Long Run" in res.stdout
    assert not (bare / "production").exists()
    demo = runner.invoke(app, ["demo"])
    assert demo.exit_code == 0 and not (bare / "production").exists()
    kept = runner.invoke(app, ["simulate", str(story.write(bare)), "--store", "file:./production"])
    assert kept.exit_code == 0 and (bare / "production").exists()


def test_import_history_shows_how_much_of_the_export_it_has_read(tmp_path, monkeypatch):
    from rich.console import Console

    from tgsync_cli.cli import render

    export = tmp_path / "result.json"
    messages = [{"id": i, "type": "message", "date": "2025-03-01T07:00:00", "date_unixtime": "1740812400",
                 "from": f"U{i}", "from_id": f"user{i}", "text": "hi " * 50} for i in range(1, 3000)]
    export.write_text(json.dumps({"name": "Sunday Long Run", "type": "public_supergroup", "id": 1500,
                                  "messages": messages}))
    screen = io.StringIO()
    monkeypatch.setattr(render, "err_console", Console(file=screen, force_terminal=True, width=100))
    res = runner.invoke(app, ["import-history", str(export), "--chat", str(CHAT), "--no-verify", "--force",
                              "--store", f"file:{tmp_path}/s"])
    assert res.exit_code == 0, res.output
    size_kb = f"{export.stat().st_size / 1e3:.1f}"
    assert "reading the export" in screen.getvalue()
    assert f"{size_kb}/{size_kb} kB" in screen.getvalue()  # read to the end


def test_an_unreachable_mongodb_is_one_line_naming_the_host_and_the_cause_never_the_password(bare):
    uri = "mongodb://tgsync:s3cret-pw@127.0.0.1:1/ayda"  # a loopback port nothing listens on
    res = runner.invoke(app, ["clubs", "--store", uri])
    assert res.exit_code == 1
    line = res.stderr.strip()
    assert "\n" not in line and "127.0.0.1:1" in line and "refused" in line.lower(), line
    assert "s3cret-pw" not in res.output


def test_a_malformed_srv_uri_names_the_store_and_the_cause(bare):
    res = runner.invoke(app, ["clubs", "--store", "mongodb+srv://tgsync:s3cret-pw@"])
    assert res.exit_code == 1
    assert "mongodb+srv://***@" in res.stderr and "host" in res.stderr.lower()
    assert "s3cret-pw" not in res.output
