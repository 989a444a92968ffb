"""A full disk at shutdown: the pending events are not dropped in silence. The stop keeps them in
memory and tries again for the drain timeout; if the disk stays full, one line says how many
reached no disk, no `.tmp` is left, and serve exits 1. A disk freed in time gets all of them."""

from __future__ import annotations

import errno
import logging
from datetime import datetime, timedelta

import pytest

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import ChatRef, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime import spool as spool_module
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.sim.faults import FaultyStore
from tgsync_cli.stores import open_store

CHAT = ChatRef(-100200, "supergroup", "Sunday Long Run")
T = datetime(2025, 6, 1, 8, 0)


class Disk:
    """os.write for the spool, refusing with ENOSPC while `full` (after writing part of it)."""

    def __init__(self, monkeypatch):
        self.full = True
        real = spool_module._write_all

        def write_all(fd, data):
            if self.full:
                real(fd, data[: len(data) // 2])  # a write cut short, as a filling disk does
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd, data)
        monkeypatch.setattr(spool_module, "_write_all", write_all)


def down_pipeline(tmp_path):
    store = FaultyStore(open_store("memory:"))
    engine = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    engine.start()
    store.fail_for(3600)  # nothing can be applied: all 300 stay pending
    pipe = Pipeline(engine, spool_path=str(tmp_path / "pending-events.jsonl"), backoff=(0.01, 0.01))
    pipe.start()
    for i in range(300):
        pipe.submit(MessageSeen(CHAT, Person(1000 + i, first_name="x"), T + timedelta(seconds=i)))
    return pipe


def test_a_stop_that_cannot_spool_says_how_many_in_one_line_and_leaves_no_tmp(tmp_path, monkeypatch, caplog):
    disk = Disk(monkeypatch)
    pipe = down_pipeline(tmp_path)
    with caplog.at_level(logging.ERROR, logger="tgsync"):
        pipe.stop(timeout=0.5)
    assert pipe.unsaved == 300
    [line] = [r.getMessage() for r in caplog.records if "could not be written" in r.getMessage()]
    assert line.startswith("300 accepted events") and "No space left on device" in line
    assert "\n" not in line
    assert not list(tmp_path.glob("*.tmp"))
    spool = tmp_path / "pending-events.jsonl"
    assert not spool.exists()  # no half line, no empty file either
    assert disk.full


def test_a_disk_freed_while_the_stop_retries_gets_every_event(tmp_path, monkeypatch):
    import threading

    disk = Disk(monkeypatch)
    pipe = down_pipeline(tmp_path)
    # freed after the drain (1 s) gave up, while the stop retries the spool (1 s more)
    threading.Timer(1.4, lambda: setattr(disk, "full", False)).start()
    pipe.stop(timeout=1.0)
    assert pipe.unsaved == 0
    lines = (tmp_path / "pending-events.jsonl").read_text().splitlines()
    assert len([x for x in lines if '"MessageSeen"' in x]) == 300
    assert not list(tmp_path.glob("*.tmp"))


def test_serve_exits_1_when_events_reached_no_disk(tmp_path, monkeypatch):
    import asyncio
    import threading

    from tests.runtime.test_serve import StandInClient

    from tgsync_cli.runtime.serve import Runtime

    Disk(monkeypatch)
    pipe = down_pipeline(tmp_path)
    runtime = Runtime(client=StandInClient(), loop=asyncio.new_event_loop(), engine=pipe.engine,
                      bot_id=9000, pipeline=pipe, drain_timeout=0.3)
    pipe.start = lambda: 0  # already running, holding 300 events for a store that is down
    threading.Thread(target=lambda: (runtime.started.wait(10), runtime.request_stop("SIGTERM"))).start()
    assert runtime.run() == 1
    runtime.loop.close()


@pytest.fixture(autouse=True)
def _quiet_store_warnings(caplog):
    caplog.set_level(logging.CRITICAL, logger="tgsync.pipeline.retry")
