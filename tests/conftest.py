pytest_plugins = ["tests.pyrogram_offline"]  # offline pyrogram fixtures: client, almaty_tz, tl

import logging
import os
import threading

import pytest

from tgsync_cli.runtime.config import forget_secrets
from tgsync_cli.stores import open_store


@pytest.fixture(autouse=True)
def isolated_process_state():
    """What one command leaves in the process must not reach the next test: `serve` sets up the
    `tgsync` logger (its own handler, no propagation, so caplog would see nothing afterwards),
    and every settings load adds its secrets to the redaction list (hypothesis-made values such
    as "none" would then turn into *** in every later message)."""
    logger = logging.getLogger("tgsync")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    forget_secrets()
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
    forget_secrets()
    workers = [t for t in threading.enumerate() if t.name == "tgsync-worker"]
    for t in workers:  # a pipeline left running would apply events into later tests' stores
        t.join(5)
    assert not [t for t in workers if t.is_alive()], "a Pipeline was started and never stopped"


@pytest.fixture
def store():
    s = open_store("memory:")
    yield s
    s.close()


@pytest.fixture
def file_store(tmp_path):
    s = open_store(f"file:{tmp_path}/store")
    yield s
    s.close()


@pytest.fixture
def bare(tmp_path, monkeypatch):
    """An empty directory and no TGSYNC_* variables: nothing configures Telegram."""
    for name in list(os.environ):
        if name.startswith("TGSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
