"""Config mistakes an operator makes, each caught with a message naming the key and the fix:
a misspelt key in tgsync.toml is an error with "did you mean", a misspelt TGSYNC_ variable a
warning with the variable meant (section or key misspelt), a negative count is refused, and
doctor neither trusts config.example.toml's placeholders nor blames a file for a dead server."""

from __future__ import annotations

import os
import re

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app
from tgsync_cli.core.errors import ConfigError
from tgsync_cli.runtime.config import load_settings

runner = CliRunner()


def config(tmp_path, text: str):
    p = tmp_path / "tgsync.toml"
    p.write_text(text)
    os.chmod(p, 0o600)
    return p


@pytest.mark.parametrize("text,says", [
    ('[store]\nurl = "memory:"\n', "unknown setting store.url (did you mean store.uri?)"),
    ('[sync]\nreconcile_treshold = 3\n', "did you mean sync.reconcile_threshold?"),
    ('[stor]\nuri = "memory:"\n', "did you mean [store]?"),
])
def test_a_misspelt_key_in_the_file_is_an_error_with_a_suggestion(tmp_path, text, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_settings(str(config(tmp_path, text)), env={})


@pytest.mark.parametrize("name,meant", [("TGSYNC_STORE_URL", "TGSYNC_STORE_URI"),
                                        ("TGSYNC_STOR_URI", "TGSYNC_STORE_URI"),
                                        ("TGSYNC_SYNC_RECONCILE_TRESHOLD", "TGSYNC_SYNC_RECONCILE_THRESHOLD"),
                                        ("TGSYNC_TELEGRAM_BOTTOKEN", "TGSYNC_TELEGRAM_BOT_TOKEN")])
def test_a_misspelt_variable_is_a_warning_naming_the_one_meant(name, meant):
    said = []
    settings = load_settings(env={name: "x"}, warn=said.append)
    assert said == [f"warning: {name} is not a tgsync setting and is ignored (did you mean {meant}?)"]
    assert settings.store.uri == "file:./tgsync-data"


@pytest.mark.parametrize("section,key,value", [("sync", "reconcile_threshold", "-1"),
                                               ("queue", "max_pending", "-5"), ("queue", "max_pending", "0"),
                                               ("telegram", "api_id", "-123")])
def test_negative_counts_and_ids_are_refused_naming_the_key(section, key, value):
    name = f"TGSYNC_{section}_{key}".upper()
    with pytest.raises(ConfigError, match=f"^{name}: expected"):
        load_settings(env={name: value})


def test_doctor_does_not_take_the_example_credentials_and_exits_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example = (os.path.join(os.path.dirname(__file__), "..", "..", "config.example.toml"))
    text = open(example).read().replace('uri = "file:./tgsync-data"', 'uri = "memory:"')
    res = runner.invoke(app, ["doctor", "--json", "--config", str(config(tmp_path, text))])
    import json

    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert checks["telegram settings"]["level"] == "fail"
    assert "example values" in checks["telegram settings"]["detail"]
    assert res.exit_code == 1


def test_doctor_on_a_store_path_that_is_a_file_says_so(tmp_path):
    (tmp_path / "data").write_text("not a store")
    res = runner.invoke(app, ["doctor", "--json", "--store", f"file:{tmp_path}/data", "--config",
                              str(config(tmp_path, ""))])
    import json

    store = next(c for c in json.loads(res.stdout) if c["name"] == "store")
    assert store["level"] == "fail" and res.exit_code == 1
    assert "is a file" in store["fix"] and "database is running" not in store["fix"]
