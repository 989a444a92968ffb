"""Settings: file, then TGSYNC_<SECTION>_<KEY>, then --store; a bad value names its key."""

import os
import stat

import pytest

from tgsync_cli.runtime.config import load_settings
from tgsync_cli.core.errors import ConfigError


def test_defaults_use_the_embedded_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.store.uri == "file:./tgsync-data" and s.cache.backend == "memory"


def test_environment_overrides_the_file_and_store_flag_overrides_both(tmp_path):
    cfg = tmp_path / "tgsync.toml"
    cfg.write_text('[store]\nuri = "memory:"\n[sync]\nreconcile_threshold = 2\n')
    s = load_settings(str(cfg), env={"TGSYNC_SYNC_RECONCILE_THRESHOLD": "5"})
    assert s.sync.reconcile_threshold == 5 and s.store.uri == "memory:"
    s = load_settings(str(cfg), env={}, store="file:/tmp/x")
    assert s.store.uri == "file:/tmp/x"


def test_variables_of_other_tools_are_not_settings(tmp_path):
    s = load_settings(str(_write(tmp_path, "")), env={"TGSYNC_TEST_REDIS_URL": "x", "TGSYNC_DEBUG": "1"})
    assert s.store.database is None  # not set: the URI's own database, or ayda_run, applies


@pytest.mark.parametrize("text,env,needle", [
    ('[sync]\nreconcile_threshold = "many"\n', {}, "sync.reconcile_threshold"),
    ('[cache]\nbackend = "memcached"\n', {}, "cache.backend"),
    ('[store]\nurl = "memory:"\n', {}, "store.url"),
    ("[store\n", {}, "not valid TOML"),
    ("", {"TGSYNC_BOT_WELCOME_DM": "perhaps"}, "TGSYNC_BOT_WELCOME_DM"),
    ("", {"TGSYNC_TELEGRAM_API_ID": "12ab"}, "TGSYNC_TELEGRAM_API_ID"),
])
def test_a_bad_value_is_one_line_naming_the_key(tmp_path, text, env, needle):
    with pytest.raises(ConfigError) as err:
        load_settings(str(_write(tmp_path, text)), env=env)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_settings_printed_by_mistake_show_no_secret(tmp_path):
    env = {"TGSYNC_TELEGRAM_API_HASH": "0123456789abcdef0123456789abcdef",
           "TGSYNC_TELEGRAM_BOT_TOKEN": "9000:AAAA-secret-token", "TGSYNC_TELEGRAM_API_ID": "12345"}
    s = load_settings(str(_write(tmp_path, "")), env=env)
    assert s.telegram.bot_token == "9000:AAAA-secret-token" and s.telegram.api_id == 12345
    for shown in (repr(s), str(s), repr(s.telegram), f"{s.telegram}"):
        assert "0123456789abcdef" not in shown and "secret-token" not in shown, shown


def test_a_bad_secret_is_never_echoed(tmp_path):
    cfg = _write(tmp_path, '[telegram]\napi_hash = 12345678901234\n')
    with pytest.raises(ConfigError) as err:
        load_settings(str(cfg), env={})
    assert "12345678901234" not in str(err.value) and "telegram.api_hash" in str(err.value)


def test_a_config_with_secrets_readable_by_others_gets_a_warning(tmp_path):
    cfg = _write(tmp_path, '[telegram]\nbot_token = "1:abc"\n')
    os.chmod(cfg, 0o644)
    warnings = []
    load_settings(str(cfg), env={}, warn=warnings.append)
    assert warnings and "chmod 600" in warnings[0]
    os.chmod(cfg, stat.S_IRUSR | stat.S_IWUSR)
    warnings.clear()
    load_settings(str(cfg), env={}, warn=warnings.append)
    assert warnings == []


def test_missing_explicit_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "nope.toml"), env={})


def _write(tmp_path, text):
    p = tmp_path / "tgsync.toml"
    p.write_text(text)
    return p


def test_only_the_mongo_password_is_redacted_not_a_common_user_name(tmp_path):
    from tgsync_cli.runtime.config import redact

    load_settings(str(_write(tmp_path, "")), env={"TGSYNC_STORE_URI": "mongodb://tgsync:pw-x9z7q@db:27017/"})
    assert redact("store mongodb://tgsync:pw-x9z7q@db, config ./tgsync.toml") == \
        "store mongodb://***@db, config ./tgsync.toml"
