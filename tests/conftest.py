pytest_plugins = ["tests.pyrogram_offline"]  # offline pyrogram fixtures: client, almaty_tz, tl

import os

import pytest

from tgsync_cli.stores import open_store


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
