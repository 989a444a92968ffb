"""Celery work queue: a real worker process on the real redis-server applies enqueued events to
the shared store; duplicates and reordering end in the same roster as in-order delivery."""

import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import (BotStatusChanged, ChatRef, MemberState, MemberStatusChanged,
                               MessageSeen, Person)
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.stores import open_store
from tests.redis_server import redis_url
from tests import worlds

pytestmark = pytest.mark.redis

CHAT = ChatRef(-100909, "supergroup", "Sunday Long Run")
T0 = datetime(2025, 7, 6, 7, 0)
BORIS, VERA, GLEB = Person(601, first_name="Boris"), Person(602, first_name="Vera"), Person(603, first_name="Gleb")
LAST = Person(699, first_name="Last")  # writes after everything else (see settled_roster)
MEMBER, LEFT, ADMIN = MemberState("member"), MemberState("left"), MemberState("administrator")


@pytest.fixture(scope="module")
def broker():
    """One broker database for the module: a Celery app keeps its first producer connection."""
    return f"{redis_url().rstrip('/')}/{random.randint(2, 15)}"


@pytest.fixture
def worker(tmp_path, broker):
    """`celery -A tgsync_cli.runtime.celery_queue worker` in its own process, on the shared file store."""
    import redis

    redis.Redis.from_url(broker).delete("tgsync")  # no stale tasks from an earlier run
    uri = f"file:{tmp_path}/store"
    env = {**os.environ, "TGSYNC_QUEUE_BROKER_URL": broker, "TGSYNC_STORE_URI": uri,
           "TGSYNC_SYNC_LAST_SEEN_FLUSH_SECONDS": "3600"}
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tgsync_cli.runtime.celery_queue", "worker",
                             "--pool=solo", "-Q", "tgsync", "--without-gossip", "--without-mingle",
                             "--loglevel=INFO"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    yield proc, uri
    stop_worker(proc)
    log.close()


def producer(uri, broker):
    """What `serve --queue celery` runs: its own engine for the hot path, a CeleryPipeline."""
    from tgsync_cli.runtime.celery_queue import CeleryPipeline, configure
    from tgsync_cli.runtime.config import load_settings

    settings = load_settings(env={"TGSYNC_QUEUE_BROKER_URL": broker, "TGSYNC_STORE_URI": uri})
    configure(settings)
    store = open_store(uri)
    engine = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    engine.start()
    return CeleryPipeline(engine, settings=settings), store


def wait_for(check, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    return check()


def settled_roster(pipeline, store):
    """The roster once the worker has applied everything submitted so far. One solo worker takes
    the queue in order, so when a last writer submitted now shows up, every task before it has
    finished writing: a roster that is only momentarily right (the story passes through the
    final roster on its way) cannot pass for the settled one."""
    pipeline.submit(MessageSeen(CHAT, LAST, T0 + timedelta(hours=1)))
    assert wait_for(lambda: LAST.id in (roster(store) or {})), roster(store)
    settled = roster(store)
    del settled[LAST.id]
    return settled


def roster(store):
    return worlds.roster(store, CHAT.id)


def story():
    """Boris joins, is promoted, leaves, rejoins; Vera joins; Gleb leaves without ever joining."""
    return [
        BotStatusChanged(CHAT, None, LEFT, MemberState("member"), T0),
        MemberStatusChanged(CHAT, BORIS, MEMBER, T0 + timedelta(minutes=1), old=LEFT),
        MemberStatusChanged(CHAT, VERA, MEMBER, T0 + timedelta(minutes=2), old=LEFT),
        MemberStatusChanged(CHAT, BORIS, ADMIN, T0 + timedelta(minutes=3), old=MEMBER),
        MemberStatusChanged(CHAT, BORIS, LEFT, T0 + timedelta(minutes=4), old=ADMIN),
        MemberStatusChanged(CHAT, GLEB, LEFT, T0 + timedelta(minutes=5), old=MEMBER),
        MemberStatusChanged(CHAT, BORIS, MEMBER, T0 + timedelta(minutes=6), old=LEFT),
    ]


def in_order_roster():
    store = open_store("memory:")
    e = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    e.start()
    for ev in story():
        e.handle(ev)
    return roster(store)


def test_worker_applies_enqueued_events_to_the_shared_store(worker, broker):
    proc, uri = worker
    pipeline, store = producer(uri, broker)
    pipeline.start()
    for ev in story():
        pipeline.submit(ev)
    expected = in_order_roster()
    assert expected == {601: ("member", "active", "chat_member_event"),
                        602: ("member", "active", "chat_member_event")}
    assert settled_roster(pipeline, store) == expected
    assert pipeline.stop() == 0
    assert proc.poll() is None  # the worker is still serving


def test_duplicated_and_reordered_delivery_ends_in_the_same_roster(worker, broker):
    proc, uri = worker
    pipeline, store = producer(uri, broker)
    events = story()
    shuffled = [events[0]] + random.Random(3).sample(events[1:], len(events) - 1)
    shuffled += events[1:][::-1]  # and every member event delivered a second time, backwards
    for ev in shuffled:
        pipeline.submit(ev)
    assert settled_roster(pipeline, store) == in_order_roster()
    doc = store.club_by_group(CHAT.id)
    assert sorted(m["telegram_id"] for m in doc["members"]) == [601, 602, 699]  # each member once
    assert pipeline.stop() == 0


def test_a_known_members_message_never_crosses_the_queue_and_unknown_writers_do(worker, broker):
    proc, uri = worker
    pipeline, store = producer(uri, broker)
    for ev in story()[:3]:
        pipeline.submit(ev)
    assert wait_for(lambda: (roster(store) or {}).get(602))
    pipeline.engine.start()  # the serve process learns the club and its members (warm cache)
    enqueued = pipeline.enqueued
    pipeline.submit(MessageSeen(CHAT, VERA, T0 + timedelta(minutes=10)))
    assert pipeline.enqueued == enqueued  # hot path: applied here, a last_seen note
    stranger = Person(604, first_name="Dina")
    pipeline.submit(MessageSeen(CHAT, stranger, T0 + timedelta(minutes=11)))
    assert pipeline.enqueued == enqueued + 1
    assert wait_for(lambda: (roster(store) or {}).get(604) == ("member", "active", "message_activity"))
    pipeline.stop()  # the serve side flushes its last_seen at shutdown
    vera = store.member(store.club_by_group(CHAT.id)["_id"], 602)
    assert vera["last_seen"] == T0 + timedelta(minutes=10)
    # the worker flushes what it saw (Dina's message) when it shuts down
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    dina = store.member(store.club_by_group(CHAT.id)["_id"], 604)
    assert dina["last_seen"] == T0 + timedelta(minutes=11)


def test_the_celery_spool_keeps_every_line_until_the_broker_took_it(tmp_path, broker):
    """A damaged line goes to .bad; with the broker down nothing is deleted; once it is back,
    every good line is enqueued and the file is gone."""
    import json as _json

    from tgsync_cli.core.codec import to_dict
    from tgsync_cli.runtime.celery_queue import CeleryPipeline

    uri = f"file:{tmp_path}/store"
    spool = tmp_path / "pending-events.jsonl"
    good = [_json.dumps(to_dict(ev)) + "\n" for ev in story()]
    spool.write_bytes(good[0].encode() + b"\xff\xfe\n" + "".join(good[1:]).encode())
    store = open_store(uri)
    engine = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    engine.start()
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    s.close()
    serve_down = (  # a `serve --queue celery` process starting while the broker is down
        "import sys\n"
        "from tgsync_cli.core.cache import MemoryMemberCache\n"
        "from tgsync_cli.core.engine import Engine\n"
        "from tgsync_cli.core.gateway import OfflineGateway\n"
        "from tgsync_cli.runtime.celery_queue import CeleryPipeline\n"
        "from tgsync_cli.stores import open_store\n"
        "e = Engine(open_store(sys.argv[1]), OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)\n"
        "e.start()\n"
        "p = CeleryPipeline(e, spool_path=sys.argv[2])\n"
        "print(p.start())\n"
        "p.stop(timeout=1)\n")
    out = subprocess.run([sys.executable, "-c", serve_down, uri, str(spool)], capture_output=True,
                         text=True, env={**os.environ, "TGSYNC_QUEUE_BROKER_URL": dead}, timeout=120)
    assert out.stdout.strip() == "0", out.stderr[-2000:]
    assert spool.read_text().count("\n") == len(good) and oct(spool.stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "pending-events.jsonl.bad").read_bytes() == b"2\t\xff\xfe\n"
    import redis

    redis.Redis.from_url(broker).delete("tgsync")
    producer(uri, broker)  # this process's Celery app now speaks to the live broker
    up = CeleryPipeline(engine, spool_path=str(spool))
    assert up.start() == len(good)
    up.stop(timeout=1)
    assert not spool.exists() and redis.Redis.from_url(broker).llen("tgsync") == len(good)
    redis.Redis.from_url(broker).delete("tgsync")


def stop_worker(proc: subprocess.Popen) -> None:
    """A worker is stopped as systemd stops it (SIGTERM, a warm shutdown), killed only if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
