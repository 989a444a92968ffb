"""The bot token, the api_hash and the MongoDB password never reach a screen or a log.

Every command is run with a config holding fake secrets, with good input and with bad, and
with a Telegram client that fails *quoting the secrets it was given* (the worst a library can
do). Every byte of stdout, stderr and every log record is searched for them.
"""

import asyncio
import json
import logging
import os
import stat

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app
from tests.worlds import Story

TOKEN = "7012345678:AAHsecretTOKENsecretTOKENsecret1234"
API_HASH = "feedfacecafebeef0badf00ddeadbeef"
MONGO_PASSWORD = "M0ngo-Pa55word-xyz"
SECRETS = (TOKEN, TOKEN.split(":", 1)[1], API_HASH, MONGO_PASSWORD)
runner = CliRunner()


class LeakyClientError(ConnectionError):
    pass


def leaky_make_client(api_id, api_hash, bot_token, session_dir, **kw):
    """A client library that puts its credentials into its error message."""
    raise LeakyClientError(f"cannot log in as {bot_token} with api_hash={api_hash}")


@pytest.fixture
def env(bare, monkeypatch):
    tmp_path = bare  # an empty directory, no TGSYNC_* variables
    monkeypatch.setattr("tgsync_cli.runtime.live.make_client", leaky_make_client)
    monkeypatch.setattr("tgsync_cli.runtime.serve.make_client", leaky_make_client)
    records = []
    real = logging.Logger.callHandlers

    def spy(self, record):
        records.append(record.getMessage())
        if record.exc_info:
            records.append(logging.Formatter().formatException(record.exc_info))
        return real(self, record)
    monkeypatch.setattr(logging.Logger, "callHandlers", spy)
    cfg = tmp_path / "tgsync.toml"
    cfg.write_text(f"""[store]
uri = "mongodb://ayda:{MONGO_PASSWORD}@127.0.0.1:9/ayda"
[telegram]
api_id = 12345
api_hash = "{API_HASH}"
bot_token = "{TOKEN}"
session_dir = "{tmp_path / 'session'}"
""")
    cfg.chmod(0o600)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(Story().bot_added().then("join", user=5).scenario))
    (tmp_path / "bad.json").write_text('{"bot": 1}')
    (tmp_path / "updates.jsonl").write_text(json.dumps({"update_id": 1, "message": {
        "message_id": 1, "date": 1700000000, "chat": {"id": -1001500, "type": "supergroup"},
        "from": {"id": 5, "is_bot": False, "first_name": "Y"}, "text": "hi"}}) + "\n{broken\n")
    (tmp_path / "result.json").write_text(json.dumps({
        "name": "Sunday Long Run", "type": "public_supergroup", "id": 1500, "messages": [
            {"id": 1, "type": "message", "date": "2025-03-01T07:00:00", "date_unixtime": "1740812400",
             "from": "Yerlan", "from_id": "user5", "text": "hi"}]}))
    return tmp_path, records


STORE = ["--store", "file:./data"]
COMMANDS = [
    ["simulate", "good.json", *STORE], ["simulate", "bad.json", *STORE],
    ["simulate", "missing.json", *STORE], ["demo"],
    ["replay", "updates.jsonl", *STORE], ["replay", "missing.jsonl", *STORE],
    ["roster", "-1001500", *STORE], ["roster", "-1001500", "--json", *STORE], ["roster", "nonsense", *STORE],
    ["clubs", *STORE], ["clubs", "--json", *STORE],
    ["import-history", "result.json", "--chat", "-1001500", "--no-verify", *STORE],
    ["import-history", "result.json", "--chat", "-1001500", *STORE],
    ["import-history", "missing.json", "--chat", "-1001500", *STORE],
    ["import-admins", "-1001500", *STORE], ["import-members", "-1001500", *STORE],
    ["post-invite", "-1001500", *STORE], ["reconcile", "-1001500", *STORE],
    ["doctor", *STORE], ["doctor", "--json", *STORE],
    ["serve", *STORE], ["serve", "--log-json", *STORE],
    ["forget", "5", "--yes", *STORE], ["forget", "5", *STORE],
]


def test_no_command_shows_a_secret_with_good_or_bad_input_or_a_leaky_client(env):
    tmp, records = env
    seen = []
    for args in COMMANDS:
        r = runner.invoke(app, args)
        seen.append((args, r.exit_code))
        text = r.stdout + r.stderr + "".join(records) + (repr(r.exception) if r.exception else "")
        for secret in SECRETS:
            assert secret not in text, f"tgsync {' '.join(args)} showed a secret"
        if r.exit_code == 1 and args[0] != "doctor":  # a refusal says why, never with a traceback
            assert r.stderr.strip() and "Traceback" not in r.stderr, (args, r.stderr)
        records.clear()
        if os.environ.get("SHOW"):
            print(args, r.exit_code, r.stdout[-300:], r.stderr[-300:])
    codes = dict((" ".join(a), c) for a, c in seen)
    assert codes["simulate good.json --store file:./data"] == 0
    assert codes["roster -1001500 --json --store file:./data"] == 0
    assert codes["simulate bad.json --store file:./data"] == 1
    assert codes["import-members -1001500 --store file:./data"] == 1  # the leaky client failed
    assert codes["serve --store file:./data"] == 1


def test_the_mongodb_password_is_not_shown_when_the_store_cannot_be_reached(env):
    tmp, records = env
    r = runner.invoke(app, ["clubs"])  # the config's mongodb:// URI; nothing listens on port 9
    assert r.exit_code == 1
    assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert MONGO_PASSWORD not in r.stdout + r.stderr + "".join(records)


def test_a_config_with_secrets_readable_by_others_gets_a_warning(env):
    tmp, _ = env
    cfg = tmp / "tgsync.toml"
    r = runner.invoke(app, ["simulate", "good.json", *STORE])
    assert r.exit_code == 0 and "readable by others" not in r.stderr
    cfg.chmod(0o644)
    r = runner.invoke(app, ["clubs", *STORE])
    assert r.exit_code == 0
    assert f"warning: {cfg.name} holds secrets and is readable by others (mode 644); run: chmod 600 {cfg.name}" in r.stderr
    assert API_HASH not in r.stderr and TOKEN not in r.stderr


def test_the_session_directory_and_file_are_owner_only(tmp_path):
    from tgsync_cli.runtime.telegram_client import make_client

    session_dir = tmp_path / "session"
    client = make_client(12345, API_HASH, TOKEN, session_dir)
    assert stat.S_IMODE(session_dir.stat().st_mode) == 0o700
    asyncio.run(client.storage.open())
    try:
        session_file = session_dir / "tgsync.session"
        assert session_file.exists()
        assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    finally:
        asyncio.run(client.storage.close())
