"""A MongoDB URI is shown with only what is known to be harmless: every credential MongoDB
documents in a connection string (the password, key-file and proxy passwords, the values of
authMechanismProperties such as an AWS session token) stays hidden, in errors and in doctor."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from tgsync_cli import stores as store_module
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.core.errors import StoreUnavailable, TelegramError
from tgsync_cli.runtime.config import forget_secrets, holds_secrets, load_settings, redact
from tgsync_cli.stores import redact_uri
from tgsync_cli.stores.uri_redaction import CREDENTIAL_OPTIONS

SECRET = "Zq8-secret-VALUE"
# every option name MongoDB documents as carrying a credential, as a user would write it
CREDENTIAL_QUERIES = {
    "tlsCertificateKeyFilePassword": SECRET,
    "sslClientCertificateKeyPassword": SECRET,
    "sslPEMKeyPassword": SECRET,
    "proxyUsername": SECRET,
    "proxyPassword": SECRET,
    "authMechanismProperties": f"AWS_SESSION_TOKEN:{SECRET}",
    "awsSessionToken": SECRET,
}


def test_the_documented_credential_options_are_all_covered():
    assert set(CREDENTIAL_QUERIES) <= set(CREDENTIAL_OPTIONS)


@pytest.mark.parametrize("option", sorted(CREDENTIAL_QUERIES))
def test_a_credential_in_the_query_string_is_never_shown(option):
    value = CREDENTIAL_QUERIES[option]
    for name in (option, option.lower()):  # option names are case-insensitive
        uri = f"mongodb://db.example:27017/ayda?replicaSet=rs0&{name}={value}&retryWrites=true"
        shown = redact_uri(uri)
        assert SECRET not in shown
        assert shown == f"mongodb://db.example:27017/ayda?replicaSet=rs0&{name}=***&retryWrites=true"


def test_oidc_and_aws_properties_hide_every_value_and_unknown_options_hide_their_name_too():
    uri = ("mongodb+srv://cluster0.example.net/?authMechanism=MONGODB-OIDC&authMechanismProperties="
           f"ENVIRONMENT:azure,TOKEN_RESOURCE:{SECRET}&apiKey={SECRET}&{SECRET}=1")
    shown = redact_uri(uri)
    assert SECRET not in shown and "apiKey" not in shown
    assert shown.startswith("mongodb+srv://cluster0.example.net/?authMechanism=MONGODB-OIDC&")


def test_a_password_holding_at_signs_and_slashes_is_hidden_whole():
    shown = redact_uri(f"mongodb://ayda:{SECRET}@/x@db.example/ayda?tls=true")
    assert SECRET not in shown and shown == "mongodb://***@db.example/ayda?tls=true"


def test_a_config_whose_uri_carries_a_token_holds_secrets_and_errors_scrub_it(tmp_path):
    forget_secrets()
    raw = {"store": {"uri": f"mongodb://db.example/?authMechanismProperties=AWS_SESSION_TOKEN:{SECRET}"}}
    assert holds_secrets(raw)
    assert not holds_secrets({"store": {"uri": "mongodb://db.example/?replicaSet=rs0&tls=true"}})
    cfg = tmp_path / "tgsync.toml"
    cfg.write_text(f'[store]\nuri = "{raw["store"]["uri"]}"\n')
    cfg.chmod(0o600)
    load_settings(str(cfg), env={})
    assert SECRET not in redact(f"driver said: bad token {SECRET} in AWS_SESSION_TOKEN:{SECRET}")
    forget_secrets()


def test_doctor_json_and_its_errors_never_show_a_query_string_credential(tmp_path, monkeypatch):
    query = "&".join(f"{k}={v}" for k, v in CREDENTIAL_QUERIES.items())
    uri = f"mongodb://ayda:pw-{SECRET}@db.example:27017/ayda?replicaSet=rs0&{query}"
    cfg = tmp_path / "tgsync.toml"
    cfg.write_text(f'[store]\nuri = "{uri}"\n')
    os.chmod(cfg, 0o644)

    def unreachable(uri, database, **kwargs):  # a driver quoting the URI whole in its error
        raise StoreUnavailable(f"cannot reach {uri}")
    monkeypatch.setattr(store_module, "open_store", unreachable)

    @contextmanager
    def no_login(settings):
        raise TelegramError("no telegram here")
        yield  # pragma: no cover
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", no_login)
    for args in (["doctor"], ["doctor", "--json"], ["clubs"]):
        res = CliRunner().invoke(app, args + ["--config", str(cfg)])
        assert res.exit_code == 1
        assert SECRET not in res.stdout + (res.stderr or ""), args
    checks = {c["name"]: c for c in json.loads(CliRunner().invoke(
        app, ["doctor", "--json", "--config", str(cfg)]).stdout)}
    # readable by others AND holding secrets (found in the query string, not only in user:pw@)
    assert checks["config permissions"]["level"] == "fail"
    assert "holds secrets" in checks["config permissions"]["detail"]
