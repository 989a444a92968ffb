"""import-history as an operator meets it: nothing is created for an input that is not good,
the report shows every figure, an export of another chat is refused, one unreadable time skips
one message.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.ops.test_history_import import CHAT, MESSAGES, msg, write_export
from tgsync_cli.cli import app

runner = CliRunner()


def _import(tmp_path, *args: str):
    return runner.invoke(app, ["import-history", *args, "--chat", str(CHAT),
                               "--store", f"file:{tmp_path}/store"])


def test_a_missing_or_garbage_export_creates_no_store(tmp_path):
    missing = _import(tmp_path, str(tmp_path / "nope.json"), "--no-verify")
    (tmp_path / "garbage.json").write_bytes(b"\x00\xffnot json at all")
    garbage = _import(tmp_path, str(tmp_path / "garbage.json"), "--no-verify")
    assert missing.exit_code == 1 and "nope.json" in missing.stderr
    assert garbage.exit_code == 1 and "garbage.json" in garbage.stderr
    assert not (tmp_path / "store").exists()
    roster = runner.invoke(app, ["roster", str(CHAT), "--store", f"file:{tmp_path}/store"])
    assert roster.exit_code == 1 and "no store" in roster.stderr  # the typo still shows


def test_no_telegram_credentials_creates_no_store(tmp_path, monkeypatch):
    for key in ("API_ID", "API_HASH", "BOT_TOKEN"):
        monkeypatch.delenv(f"TGSYNC_TELEGRAM_{key}", raising=False)
    monkeypatch.chdir(tmp_path)  # no tgsync.toml here
    res = _import(tmp_path, str(write_export(tmp_path)))
    assert res.exit_code == 1 and "telegram.api_id is missing" in res.stderr
    assert not (tmp_path / "store").exists()


def test_replay_of_a_missing_file_creates_no_store(tmp_path):
    res = runner.invoke(app, ["replay", str(tmp_path / "updates.jsonl"), "--store", f"file:{tmp_path}/store"])
    assert res.exit_code == 1 and "updates.jsonl: cannot read" in res.stderr
    assert not (tmp_path / "store").exists()


def test_the_report_shows_the_members_recorded_as_left(tmp_path):
    res = _import(tmp_path, str(write_export(tmp_path)), "--no-verify")
    assert res.exit_code == 0, res.output
    doc = json.loads(_import(tmp_path, str(write_export(tmp_path)), "--no-verify", "--json").stdout)
    assert doc["already_known"] == 6  # the second run adds nothing
    assert "recorded as left" in res.stdout
    line = next(ln for ln in res.stdout.splitlines() if "recorded as left" in ln)
    assert line.rstrip(" │").split()[-1] == "1"  # Yerlan removed himself


def test_an_export_of_another_chat_is_refused_unless_forced(tmp_path):
    other = write_export(tmp_path, id_=42)
    refused = _import(tmp_path, str(other), "--no-verify")
    assert refused.exit_code == 1
    assert "the export is of chat -1000000000042" in refused.stderr and "--force" in refused.stderr
    assert not (tmp_path / "store").exists()
    forced = _import(tmp_path, str(other), "--no-verify", "--force")
    assert forced.exit_code == 0, forced.output
    assert "because of --force" in " ".join(forced.stdout.split())


def test_one_unreadable_time_skips_that_message_and_names_it(tmp_path):
    messages = MESSAGES + [msg(11, "user6", "Zere", 600)]
    messages[-1]["date_unixtime"] = "tomorrow"
    res = _import(tmp_path, str(write_export(tmp_path, messages)), "--no-verify")
    assert res.exit_code == 0, res.output
    assert "unreadable date_unixtime" in res.stdout and "message id 11" in res.stdout
    doc = json.loads(runner.invoke(app, ["roster", str(CHAT), "--json", "--store",
                                         f"file:{tmp_path}/store"]).stdout)
    assert 6 not in {m["telegram_id"] for m in doc["members"]} and len(doc["members"]) == 6
