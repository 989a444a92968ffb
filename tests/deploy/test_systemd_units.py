"""deploy/: the systemd units an operator installs are valid, hardened, and start commands that
exist; `systemd-analyze verify` checks each one where the tool is installed."""

from __future__ import annotations

import inspect
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app
from tgsync_cli.runtime.serve import Runtime

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted(p.name for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer"))
INSTALLED = "/opt/tgsync/.venv/bin/tgsync"  # where the README installs it


def settings(name: str) -> dict:
    """key → [values] of a unit file (a key may repeat)."""
    out: dict = {}
    for line in (DEPLOY / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(value: str) -> float:
    units = {"s": 1, "min": 60, "h": 3600}
    for suffix, size in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if value.endswith(suffix):
            return float(value[:-len(suffix)]) * size
    return float(value)


def test_there_are_units_for_serve_worker_and_a_reconcile_timer():
    assert UNITS == ["tgsync-reconcile.service", "tgsync-reconcile.timer", "tgsync-serve.service",
                     "tgsync-worker.service"]


@pytest.mark.parametrize("name", ["tgsync-serve.service", "tgsync-worker.service",
                                  "tgsync-reconcile.service"])
def test_each_service_is_hardened_and_may_write_only_its_state(name):
    s = settings(name)
    assert s.get("DynamicUser") == ["yes"] or s.get("User"), "runs as an unprivileged user"
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    assert s["WorkingDirectory"][0] in s["ReadWritePaths"][0].split()  # store, session, spool
    assert s["CapabilityBoundingSet"] == [""]


@pytest.mark.parametrize("name", ["tgsync-serve.service", "tgsync-worker.service"])
def test_long_running_services_restart_on_failure_and_outwait_the_drain(name):
    s = settings(name)
    drain = inspect.signature(Runtime).parameters["drain_timeout"].default
    assert s["Restart"] == ["on-failure"]
    assert seconds(s["TimeoutStopSec"][0]) > drain  # systemd must not kill serve mid-spool
    assert s["KillSignal"] == ["SIGTERM"]


@pytest.mark.parametrize("name", ["tgsync-serve.service", "tgsync-worker.service",
                                  "tgsync-reconcile.service"])
def test_each_unit_starts_a_command_tgsync_accepts(name, bare):
    argv = shlex.split(settings(name)["ExecStart"][0])
    assert argv[0] == INSTALLED
    result = CliRunner().invoke(app, argv[1:] + ["--help"])
    assert result.exit_code == 0, result.output


def test_the_timer_runs_reconcile_of_every_club():
    assert settings("tgsync-reconcile.service")["Type"] == ["oneshot"]
    assert "reconcile --all" in settings("tgsync-reconcile.service")["ExecStart"][0]
    timer = settings("tgsync-reconcile.timer")
    assert timer["OnCalendar"] and timer["Persistent"][0] in ("yes", "true")


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_accepts_each_unit(name, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package `systemd`): units not verified")
    # the installed path does not exist here: point ExecStart at this checkout's tgsync
    here = str(Path(sys.executable).with_name("tgsync"))
    for unit in UNITS:  # the timer's service must sit next to it
        (tmp_path / unit).write_text((DEPLOY / unit).read_text().replace(INSTALLED, here))
    done = subprocess.run([tool, "verify", str(tmp_path / name)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if "tgsync" in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr
