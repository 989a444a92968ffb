pytest_plugins = ["tests.pyrogram_offline"]  # offline pyrogram fixtures: client, almaty_tz, tl

import logging
import os
import threading

import pytest
from hypothesis import Phase, is_hypothesis_test
from hypothesis import settings as hypothesis_settings

from tgsync_cli.runtime.config import forget_secrets
from tgsync_cli.stores import open_store

# scripts/mutate runs the property stories again for every mutant they reach (all of them for a
# survivor): a few fixed examples each keep the whole pass under half an hour, derandomized
# examples give every run the same verdict, and a failing example is not shrunk (a mutant is
# caught by any failure; shrinking it took a minute). It sets TGSYNC_TEST_HYPOTHESIS_PROFILE=mutation.
MUTATION_PROFILE = "mutation"
hypothesis_settings.register_profile(MUTATION_PROFILE, max_examples=10, derandomize=True, database=None,
                                     deadline=None, phases=(Phase.explicit, Phase.generate))
if os.environ.get("TGSYNC_TEST_HYPOTHESIS_PROFILE"):
    hypothesis_settings.load_profile(os.environ["TGSYNC_TEST_HYPOTHESIS_PROFILE"])


def pytest_collection_modifyitems(items):
    """A story's own @settings(max_examples=...) outranks any profile: under the mutation profile
    its count is capped at the profile's (the rest of its settings kept)."""
    if os.environ.get("TGSYNC_TEST_HYPOTHESIS_PROFILE") != MUTATION_PROFILE:
        return
    cap = hypothesis_settings.get_profile(MUTATION_PROFILE).max_examples
    for item in items:
        test = getattr(item, "obj", None)
        if test is None or not is_hypothesis_test(test):
            continue
        test = getattr(test, "__func__", test)
        own = test._hypothesis_internal_use_settings
        if own.max_examples > cap:
            test._hypothesis_internal_use_settings = hypothesis_settings(own, max_examples=cap)


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
