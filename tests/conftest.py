import pytest

from tgsync_cli.store import open_store


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
