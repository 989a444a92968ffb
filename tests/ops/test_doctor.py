"""`doctor`: one run lists everything an operator must fix, and never prints a secret.

Telegram is the simulator's gateway (a world after a story) or a stand-in: nothing connects.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from typer.testing import CliRunner

from tgsync_cli import ops
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.runtime.config import load_settings
from tgsync_cli import stores as store_module
from tgsync_cli.core.errors import StoreUnavailable, TelegramError
from tgsync_cli.stores import open_store
from tests.worlds import BOT, CHAT, Story, connected, play

API_HASH = "0123456789abcdef0123456789abcdef"
TOKEN = "8000:AAH_thisIsAFakeBotTokenForTests0123"
MONGO_PW = "s3cretMongoPass"


def write_config(tmp_path, store_uri, mode=0o600, **telegram):
    tg = {"api_id": 12345, "api_hash": API_HASH, "bot_token": TOKEN, **telegram}
    lines = ["[store]", f'uri = "{store_uri}"', "[telegram]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in tg.items() if v is not None]
    p = tmp_path / "tgsync.toml"
    p.write_text("\n".join(lines) + "\n")
    os.chmod(p, mode)
    return p


def by_name(checks):
    return {c.name: c for c in checks}


def test_the_simulated_telegram_tells_the_bot_its_own_status(tmp_path):
    store = open_store("memory:")
    gw = play(Story().bot_added(as_="administrator"), store)
    assert gw.get_member(CHAT, BOT).state.status == "administrator"


def test_a_member_bot_learns_which_routes_need_admin_rights(tmp_path, monkeypatch):
    """Given one group where the bot is admin and one where it is only a member."""
    store_dir = tmp_path / "store"
    store = open_store(f"file:{store_dir}")
    story = (Story({1: "creator", 2: "member"}, privacy_mode=True).bot_added(as_="administrator"))
    other = {"id": -1002, "type": "supergroup", "title": "Trail Crew",
             "members": [{"user": 3, "status": "creator"}]}
    story.scenario["chats"].append(other)
    story.then("add_bot", chat=-1002, by=3, as_="member")
    gw = play(story, store)
    store.close()
    cfg = write_config(tmp_path, f"file:{store_dir}")
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))

    res = CliRunner().invoke(app, ["doctor", "--json", "--config", str(cfg)])

    assert res.exit_code == 0, res.output
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["telegram login"]["level"] == "ok"
    assert checks["store indexes"]["level"] == "ok"
    admin = checks[f"club Sunday Long Run ({CHAT})"]
    member = checks["club Trail Crew (-1002)"]
    assert admin["level"] == "ok" and ("works here: admin import (1), registration button (2), join/leave events (3), "
                                         "message activity (4), service messages (5), roster import (6)") in admin["detail"]
    assert member["level"] == "warn" and ("works here: admin import (1), registration button (2), "
                                          "service messages (5)") in member["detail"]
    assert "promote" in member["fix"]


def test_a_removed_bot_fails_its_club_and_the_exit_status(tmp_path, monkeypatch):
    store_dir = tmp_path / "store"
    store = open_store(f"file:{store_dir}")
    gw = play(Story().bot_added().then("remove_bot"), store)
    store.close()
    cfg = write_config(tmp_path, f"file:{store_dir}")
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))

    res = CliRunner().invoke(app, ["doctor", "--json", "--config", str(cfg)])

    assert res.exit_code == 1
    club = {c["name"]: c for c in json.loads(res.stdout)}[f"club Sunday Long Run ({CHAT})"]
    assert club["level"] == "fail" and "not in the group" in club["detail"]
    assert club["fix"] == "add the bot back to the group as an admin"


def test_doctor_never_prints_a_secret(tmp_path, monkeypatch):
    """Even when every check fails with messages built from the settings."""
    uri = f"mongodb://ayda_ops:{MONGO_PW}@db.example:27017/ayda"
    cfg = write_config(tmp_path, uri, mode=0o644)

    def unreachable(uri, database, **kwargs):  # the driver's message may quote the URI whole
        raise StoreUnavailable(f"cannot reach {uri}")

    monkeypatch.setattr(store_module, "open_store", unreachable)

    @contextmanager
    def failing_login(settings):
        raise TelegramError(f"login refused for {settings.telegram.bot_token} / {settings.telegram.api_hash}")
        yield  # pragma: no cover

    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", failing_login)
    for args in (["doctor"], ["doctor", "--json"]):
        res = CliRunner().invoke(app, args + ["--config", str(cfg)])
        out = res.stdout + (res.stderr or "")
        assert res.exit_code == 1
        for secret in (TOKEN, API_HASH, MONGO_PW, TOKEN.split(":")[1]):
            assert secret not in out
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["config permissions"]["level"] == "fail"
    assert checks["config permissions"]["fix"] == f"chmod 600 {cfg}"
    assert checks["store"]["level"] == "fail"
    assert checks["telegram login"]["level"] == "fail"


def test_missing_telegram_settings_are_named_and_login_is_not_tried(tmp_path):
    cfg = write_config(tmp_path, "memory:", api_hash=None, bot_token=None)
    tried = []

    def factory(settings):
        tried.append(settings)
        raise AssertionError("must not connect without credentials")

    checks = by_name(ops.doctor_checks(load_settings(str(cfg), env={}), factory))
    assert checks["telegram settings"].level == "warn"
    assert "telegram.api_hash" in checks["telegram settings"].detail
    assert "telegram.bot_token" in checks["telegram settings"].detail
    assert checks["telegram login"].detail.startswith("skipped")
    assert not tried


def test_a_malformed_token_fails_naming_the_key_not_the_value(tmp_path):
    cfg = write_config(tmp_path, "memory:", bot_token="not-a-token-at-all")
    checks = by_name(ops.doctor_checks(load_settings(str(cfg), env={}), None))
    assert checks["telegram settings"].level == "fail"
    assert "telegram.bot_token" in checks["telegram settings"].detail
    assert "not-a-token-at-all" not in checks["telegram settings"].detail


def test_privacy_mode_decides_whether_route_4_is_live_for_a_member_bot():
    assert 4 in ops.live_routes(in_group=True, admin=False, privacy=False)
    assert 4 not in ops.live_routes(in_group=True, admin=False, privacy=True)
    assert 4 not in ops.live_routes(in_group=True, admin=False, privacy=None)
    assert ops.live_routes(in_group=False, admin=False, privacy=True) == [2, 5]


def test_a_store_not_created_yet_is_a_warning_and_doctor_creates_nothing(tmp_path):
    cfg = write_config(tmp_path, f"file:{tmp_path}/nowhere")
    checks = by_name(ops.doctor_checks(load_settings(str(cfg), env={}), None))
    assert checks["store"].level == "warn"
    assert not (tmp_path / "nowhere").exists()



def test_an_admin_bot_without_the_right_to_add_members_is_told_join_requests_need_it(tmp_path, monkeypatch):
    store_dir = tmp_path / "store"
    store = open_store(f"file:{store_dir}")
    gw = play(Story().then("add_bot", by=1, as_="administrator", can_invite_users=False)
              .then("policy", join="roster"), store)
    store.close()
    cfg = write_config(tmp_path, f"file:{store_dir}")
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))

    res = CliRunner().invoke(app, ["doctor", "--json", "--config", str(cfg)])

    club = {c["name"]: c for c in json.loads(res.stdout)}[f"club Sunday Long Run ({CHAT})"]
    assert club["level"] == "warn" and "can_invite_users" in club["detail"]
    assert "join policy roster" in club["detail"] and "Invite users" in club["fix"]
