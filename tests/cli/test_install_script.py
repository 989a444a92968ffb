"""scripts/_venv.sh trusts an install only once the installed `tgsync` runs.

A stand-in `.venv/bin/python` plays pip (failing or succeeding, as the story needs) so no
package is downloaded: what is tested is the script's bookkeeping, not pip.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = ".tgsync-installed"


def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "_venv.sh", repo / "scripts" / "_venv.sh")
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / ".venv" / "bin").mkdir(parents=True)
    return repo


def stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "source scripts/_venv.sh ''"], cwd=repo,
                          capture_output=True, text=True, timeout=60)


def test_a_failed_install_is_retried_and_only_a_working_one_is_trusted(tmp_path):
    repo = checkout(tmp_path)
    bin_ = repo / ".venv" / "bin"

    stub(bin_ / "python", 'echo "ERROR: No matching distribution (offline)" >&2; exit 1')  # pip fails
    first = run(repo)
    assert first.returncode == 1 and "installing" in first.stderr
    assert "install failed" in first.stderr and not (repo / ".venv" / MARKER).exists()

    stub(bin_ / "python", "exit 0")  # pip "succeeds" but leaves no working console script
    second = run(repo)
    assert second.returncode == 1 and "installing" in second.stderr  # tried again
    assert not (repo / ".venv" / MARKER).exists()

    stub(bin_ / "tgsync", 'echo "tgsync 0.1.0"')
    third = run(repo)
    assert third.returncode == 0 and (repo / ".venv" / MARKER).exists()

    fourth = run(repo)  # installed: nothing to do, nothing said
    assert fourth.returncode == 0 and fourth.stderr == ""
