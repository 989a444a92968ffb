"""Ctrl-C and SIGTERM end any command, also while it is still connecting to Telegram.

Real processes against a loopback stand-in for Telegram's data centre that accepts the connection
and never answers (TGSYNC_TEST_TELEGRAM_ADDRESS; nothing leaves the machine): pyrogram's real
connect code is what gets interrupted. `serve` exits 0 (nothing taken, nothing to drain); the
one-shot commands exit 130 (SIGINT) or 143 (SIGTERM) with one line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

API_HASH = "0123456789abcdef0123456789abcdef"
TOKEN = "8000:AAH_thisIsAFakeBotTokenForTests0123"
HANG_GUARD = 20  # seconds: only so a broken build fails instead of hanging the suite


class Silent:
    """A TCP server on 127.0.0.1 that accepts and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent():
    s = Silent()
    yield s
    s.close()


def start(tmp_path, port: int, *args: str) -> subprocess.Popen:
    cfg = tmp_path / "tgsync.toml"
    cfg.write_text(f'[store]\nuri = "file:{tmp_path}/store"\n[telegram]\napi_id = 1\n'
                   f'api_hash = "{API_HASH}"\nbot_token = "{TOKEN}"\nsession_dir = "{tmp_path}/session"\n')
    os.chmod(cfg, 0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGSYNC_")}
    env["TGSYNC_TEST_TELEGRAM_ADDRESS"] = f"127.0.0.1:{port}"
    # as from a shell: SIGINT not ignored (an earlier test in this process may have ignored it,
    # and an ignored signal is inherited)
    return subprocess.Popen([sys.executable, "-m", "tgsync_cli", *args, "--config", str(cfg)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop_while_connecting(proc: subprocess.Popen, silent: Silent, sig: int):
    try:
        assert silent.accepted.wait(HANG_GUARD), "the command never tried to connect"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stopped_while_connecting_exits_0(tmp_path, silent, sig):
    code, out, err = stop_while_connecting(start(tmp_path, silent.port, "serve"), silent, sig)
    assert code == 0, err
    assert "stopped while connecting" in err and "Traceback" not in err


@pytest.mark.parametrize("sig,code,says", [(signal.SIGINT, 130, "error: interrupted"),
                                           (signal.SIGTERM, 143, "error: terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_a_one_shot_command_stopped_while_connecting_ends_with_one_line(tmp_path, silent, sig, code, says):
    rc, out, err = stop_while_connecting(start(tmp_path, silent.port, "import-members", "-1001500"),
                                         silent, sig)
    assert rc == code, err
    assert err.startswith(says) and err.count("\n") == 1, err


def test_telegram_unreachable_is_one_line_with_the_cause(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    proc = start(tmp_path, port, "import-admins", "-1001500")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.startswith("error: Telegram is not reachable") and f"127.0.0.1', {port})" in err, err
    assert err.count("\n") == 1 and TOKEN not in err and API_HASH not in err


def test_serve_log_json_is_nothing_but_json_with_utc_times(tmp_path, silent):
    import json

    code, out, err = stop_while_connecting(start(tmp_path, silent.port, "serve", "--log-json"),
                                           silent, signal.SIGTERM)
    assert code == 0
    docs = [json.loads(line) for line in err.splitlines()]  # any plain line would fail here
    assert docs and all(d["ts"].endswith("Z") for d in docs)
    assert any(d.get("event") == "stopped" for d in docs)


def test_worker_logs_only_json_with_log_json_and_stops_on_sigterm(tmp_path):
    import json
    import time

    import redis

    from tests.redis_server import redis_url

    broker = redis_url().rstrip("/") + "/5"
    r = redis.Redis.from_url(broker)
    r.flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGSYNC_")}
    env.update(TGSYNC_QUEUE_BROKER_URL=broker, TGSYNC_LOG_JSON="true")
    proc = subprocess.Popen([sys.executable, "-m", "tgsync_cli", "worker", "--pool", "solo",
                             "--store", f"file:{tmp_path}/store"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for _ in range(HANG_GUARD * 10):  # ready once it has bound its queue in the broker
            if r.exists("_kombu.binding.tgsync") or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        r.flushdb()
        r.close()
    docs = [json.loads(line) for line in err.splitlines() if line.strip()]  # nothing but JSON
    assert all(d["ts"].endswith("Z") for d in docs)
    assert proc.returncode == 0


# from 0.4 s: before that the interpreter itself may still be starting (runpy, site), which no
# program can guard; tgsync's own entry point installs its handlers first thing
@pytest.mark.parametrize("delay", [0.4, 0.8, 1.5, 2.5])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stopped_at_any_moment_of_start_up_exits_0_with_one_line(tmp_path, silent, sig, delay):
    """Importing, reading the config, opening the store, connecting: wherever the signal lands,
    the operator sees one line and status 0 (what README promises)."""
    import time

    proc = start(tmp_path, silent.port, "serve")
    time.sleep(delay)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 0, err
    assert "Traceback" not in err and any("stopped while" in ln for ln in lines), err
    assert len([ln for ln in lines if "stopped" in ln]) == 1, err


@pytest.mark.parametrize("delay", [0.4, 1.5])
def test_serve_log_json_stopped_early_is_still_only_json(tmp_path, silent, delay):
    import json
    import time

    proc = start(tmp_path, silent.port, "serve", "--log-json")
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 0, err
    docs = [json.loads(line) for line in err.splitlines()]
    assert any("stopped while" in d["msg"] for d in docs)


def test_serve_log_json_fatal_error_is_a_json_line(tmp_path):
    import json

    cfg = tmp_path / "tgsync.toml"
    cfg.write_text('[store]\nuri = "file:./s"\n[telegram]\napi_id = 1\n')
    os.chmod(cfg, 0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGSYNC_")}
    env["TGSYNC_STOR_URI"] = "typo"  # a warning before the log format is known: JSON too
    res = subprocess.run([sys.executable, "-m", "tgsync_cli", "serve", "--log-json", "--config", str(cfg)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    docs = [json.loads(line) for line in res.stderr.splitlines()]  # a plain line fails here
    assert docs[-1]["level"] in ("critical", "CRITICAL") and "telegram.api_hash is missing" in docs[-1]["msg"]
    assert any("TGSYNC_STOR_URI" in d["msg"] for d in docs)
