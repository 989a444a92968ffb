"""A store someone else owns: listing commands read it, and what cannot be done is called a
permission problem, naming who asks and who owns it — never "busy or damaged" or "no store".

Given a store written by its owner and then made read-only to others (0755 directory, 0644
file), another user lists clubs and the roster; with the directory 0700 they are told they may
not read it; a command that writes is told it may not write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app

runner = CliRunner()
NOBODY = 65534
AS_ROOT = os.geteuid() == 0


@pytest.fixture
def store_dir():
    """A demo store in a directory others may enter (pytest's own tmp is 0700)."""
    base = tempfile.mkdtemp(prefix="tgsync-perm-")
    os.chmod(base, 0o755)
    store = os.path.join(base, "store")
    assert runner.invoke(app, ["demo", "--store", f"file:{store}"]).exit_code == 0
    yield store
    for root, dirs, files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
    shutil.rmtree(base)


def as_someone_else(*args: str) -> subprocess.CompletedProcess:
    """Run tgsync as a user who does not own the store: `nobody` when the tests run as root,
    otherwise this user after the owner's rights are taken away (see `share`)."""
    cmd = [sys.executable, "-c", "from tgsync_cli.cli import main; main()", *args]
    if AS_ROOT:
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to run as another user")
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    env = {**os.environ, "HOME": "/tmp", "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd="/tmp")


def share(store: str, dir_mode: int, file_mode: int) -> None:
    db = os.path.join(store, "ayda_run.sqlite3")
    if not AS_ROOT:  # without another user, take the rights away from the owner
        dir_mode, file_mode = dir_mode & 0o555 if dir_mode & 0o077 else 0, file_mode & 0o444 if file_mode & 0o077 else 0
    os.chmod(db, file_mode)
    os.chmod(store, dir_mode)


def test_another_user_lists_a_read_only_store(store_dir):
    share(store_dir, 0o755, 0o644)
    clubs = as_someone_else("clubs", "--store", f"file:{store_dir}")
    roster = as_someone_else("roster", "-1001234567890", "--store", f"file:{store_dir}")
    history = as_someone_else("history", "-1001234567890", "--store", f"file:{store_dir}")
    for res in (clubs, roster, history):
        assert res.returncode == 0, res.stderr
    assert "SRG Almaty Runners" in clubs.stdout and "Saule" in roster.stdout


def test_a_command_that_writes_is_told_it_may_not_write(store_dir):
    share(store_dir, 0o755, 0o644)
    res = as_someone_else("replay", "/dev/null", "--store", f"file:{store_dir}")
    assert res.returncode == 1
    assert "permission denied" in res.stderr and "may not write" in res.stderr
    assert "busy or damaged" not in res.stderr


def test_a_store_in_a_directory_others_may_not_enter_is_a_permission_problem(store_dir):
    share(store_dir, 0o700, 0o600)
    res = as_someone_else("clubs", "--store", f"file:{store_dir}")
    assert res.returncode == 1
    assert "permission denied" in res.stderr and "may not read" in res.stderr
    assert "no store at" not in res.stderr
    if AS_ROOT:
        assert "user nobody" in res.stderr and "owned by root, mode 0700" in res.stderr
