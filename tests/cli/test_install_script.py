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


def test_the_test_script_after_the_demo_does_not_call_it_a_first_run(tmp_path):
    """./scripts/demo made .venv; ./scripts/test adds the test tools and says just that."""
    repo = checkout(tmp_path)
    bin_ = repo / ".venv" / "bin"
    stub(bin_ / "python", "exit 0")
    stub(bin_ / "tgsync", 'echo "tgsync 0.1.0"')
    assert run(repo).returncode == 0  # the demo's install
    res = subprocess.run(["bash", "-c", "source scripts/_venv.sh '[dev]'"], cwd=repo,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "first run" not in res.stderr
    assert "Updating .venv: installing tgsync with [dev]" in res.stderr


def test_a_fresh_checkout_is_told_it_is_the_first_run(tmp_path):
    repo = checkout(tmp_path)
    shutil.rmtree(repo / ".venv")
    fake = tmp_path / "py"
    stub(fake, 'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p .venv/bin; '
               'printf "#!/bin/sh\\nexit 0\\n" > .venv/bin/python; chmod +x .venv/bin/python; '
               'printf "#!/bin/sh\\necho tgsync\\n" > .venv/bin/tgsync; chmod +x .venv/bin/tgsync; fi; exit 0')
    res = subprocess.run(["bash", "-c", f"PYTHON={fake} source scripts/_venv.sh ''"], cwd=repo,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "first run" in res.stderr
