"""What an operator types wrong is a usage error (exit 2) before any store or connection opens.

Options are recognised first; only a bare negative number is a chat id; typos get a suggestion.
Every check below runs with a working directory where a store would be created, and a gateway
factory that fails the test if anything tries to reach Telegram.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tests.worlds import CHAT, Story

runner = CliRunner()


@pytest.fixture
def untouched(bare, monkeypatch):
    """No store may appear in the directory and Telegram may not be asked."""
    monkeypatch.setenv("COLUMNS", "300")  # Click's message on one line

    def no_telegram(settings):
        raise AssertionError("Telegram was contacted for a usage error")

    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", no_telegram)
    yield bare
    assert not (bare / "tgsync-data").exists(), "a store was created"


USAGE_ERRORS = [
    (["reconcile"], "give a CHAT, or --all"),
    (["reconcile", "-1500", "--all"], "give one of them"),
    (["reconcile", "--all", "--threshold", "-1"], "--threshold"),
    (["roster", "--jsn", "-1500"], "did you mean --json?"),
    (["roster", "abc"], "expected a chat id"),
    (["roster", "1500"], "negative"),
    (["roster", "-1500", "--status", "lefft"], "did you mean left?"),
    (["roster", "-1500", "--since", "yesterday"], "expected a date"),
    (["import-history", "x.json", "--chat", "0"], "negative"),
    (["import-history", "x.json", "--chat", "1500"], "negative"),
    (["import-history", "x.json", "--chat", "-" + "9" * 30], "too many digits"),
    (["import-history", "x.json", "--chat", "-9223372036854775809"], "out of range"),
    (["import-members", "club_abc"], "expected a chat id"),
    (["forget", "0"], "positive"),
    (["history", "0"], "negative"),
    (["history", "abc"], "expected a chat id"),
    (["history", "-" + "9" * 23], "too many digits"),
    (["stats", "-" + "9" * 23], "too many digits"),
    (["stats", "1500"], "negative"),
    (["member", "9" * 23], "positive 64-bit"),
    (["member", "-5"], "positive 64-bit"),
    (["member", "0"], "positive 64-bit"),
    (["forget", "9" * 23], "positive 64-bit"),
    (["worker", "--pool", "gevent"], "prefork"),
    (["worker", "--store", "memory:"], "memory:"),
]


@pytest.mark.parametrize("args,says", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_before_anything_is_opened(untouched, args, says):
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert says in res.stderr, res.stderr


def test_h_is_help_everywhere(untouched):
    for args in (["-h"], ["roster", "-h"], ["reconcile", "-h"], ["import-history", "-h"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.stdout, args


def test_a_negative_chat_id_may_come_before_or_after_options(tmp_path):
    store = f"file:{tmp_path}/store"
    assert runner.invoke(app, ["simulate", str(Story().bot_added().write(tmp_path)),
                               "--store", store]).exit_code == 0
    before = runner.invoke(app, ["roster", str(CHAT), "--json", "--store", store])
    after = runner.invoke(app, ["roster", "--json", "--store", store, str(CHAT)])
    assert before.exit_code == after.exit_code == 0
    assert json.loads(before.stdout) == json.loads(after.stdout)


def test_version_and_completion_are_offered():
    assert runner.invoke(app, ["--version"]).stdout.startswith("tgsync ")
    assert "--install-completion" in runner.invoke(app, ["--help"]).stdout


def test_help_and_offline_commands_do_not_load_the_telegram_library(tmp_path):
    code = ("import sys\n"
            "from tgsync_cli.cli import main\n"
            "for argv in (['--help'], ['roster', '--help'], ['clubs', '--store', 'memory:']):\n"
            "    sys.argv = ['tgsync', *argv]\n"
            "    try:\n"
            "        main()\n"
            "    except SystemExit as e:\n"
            "        assert e.code in (0, None), (argv, e.code)\n"
            "assert 'pyrogram' not in sys.modules, 'pyrogram was imported'\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_a_worker_without_redis_says_so_in_one_line(untouched, monkeypatch):
    monkeypatch.setenv("TGSYNC_QUEUE_BROKER_URL", "redis://:hunter22@127.0.0.1:1/0")
    res = runner.invoke(app, ["worker", "--store", "file:./shared"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: queue.broker_url redis://***@127.0.0.1:1/0: Redis is not reachable")
    assert res.stderr.count("\n") == 1 and "hunter22" not in res.stderr
    assert not (untouched / "shared").exists()


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfe binary \x89PNG", "[store\n".encode()])
def test_a_config_file_that_is_not_toml_is_one_line(untouched, content):
    (untouched / "bad.toml").write_bytes(content)
    for cmd in (["clubs"], ["history", "-1500"], ["doctor"]):
        res = runner.invoke(app, [*cmd, "--config", str(untouched / "bad.toml")])
        assert res.exit_code == 1, (cmd, res.output)
        assert res.stderr.startswith(f"error: {untouched / 'bad.toml'}: not ") and res.stderr.count("\n") == 1
        assert "internal error" not in res.stderr
