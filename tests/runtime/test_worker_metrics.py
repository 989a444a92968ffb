"""`tgsync worker --metrics`: a real worker process on the real redis-server, its endpoint
scraped over loopback while `serve`'s queue hands it a club's story. With the prefork pool the
tasks run in child processes, and their figures still add up on the one endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.redis_server import redis_url
from tests.runtime.test_celery import CHAT, LAST, T0, roster, stop_worker, story, wait_for
from tests.runtime.test_serve_metrics import figure, get, round_trips, scrape

pytestmark = pytest.mark.redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(params=["solo", "prefork"])
def worker(request, tmp_path):
    import random

    import redis

    broker = f"{redis_url().rstrip('/')}/{random.randint(2, 15)}"
    redis.Redis.from_url(broker).delete("tgsync")
    uri = f"file:{tmp_path}/store"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")}
    env.update({"TGSYNC_QUEUE_BROKER_URL": broker, "TGSYNC_STORE_URI": uri,
                "TGSYNC_SYNC_LAST_SEEN_FLUSH_SECONDS": "3600"})
    log = (tmp_path / "worker.log").open("w")
    pool = ["--pool", request.param] + (["--concurrency", "2"] if request.param == "prefork" else [])
    proc = subprocess.Popen([sys.executable, "-m", "tgsync_cli", "worker", *pool,
                             "--metrics", f"127.0.0.1:{port}"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    yield proc, uri, broker, port, tmp_path / "worker.log"
    stop_worker(proc)
    log.close()


def answering(port):
    try:
        return get(port, "/readyz")
    except OSError:
        return None


def test_the_worker_s_endpoint_counts_what_its_tasks_applied(worker):
    _, uri, broker, port, log = worker
    ready = wait_for(lambda: (r := answering(port)) and r[0] == 200 and r, 60)
    assert ready == (200, "ready\n"), log.read_text()[-2000:]
    assert "health and metrics: http://127.0.0.1:" in log.read_text()
    before = scrape(port)
    assert figure(before, "tgsync_work_backlog") == 0
    [build] = [dict(labels) for (name, labels) in before if name == "tgsync_build_info"]
    assert build["role"] == "worker"

    from datetime import timedelta

    from tgsync_cli.core.events import MessageSeen
    from tgsync_cli.stores import open_store
    store = open_store(uri)
    # two prefork children apply in any order: the club first, so no message meets an unknown group
    first, *changes = story()
    enqueue(broker, [first])
    assert wait_for(lambda: roster(store) is not None, 60), log.read_text()[-2000:]
    enqueue(broker, changes)
    assert wait_for(lambda: figure(scrape(port), "tgsync_events_total", route="chat_member_event",
                                   outcome="applied") == 6, 60), scrape(port)
    enqueue(broker, [MessageSeen(CHAT, LAST, T0 + timedelta(hours=1))])
    assert wait_for(lambda: LAST.id in (roster(store) or {}), 60), log.read_text()[-2000:]
    m = wait_for(lambda: (s := scrape(port)) and figure(
        s, "tgsync_events_total", route="message_activity", outcome="applied") == 1 and s, 30)
    assert m, scrape(port)
    assert roster(store) == {601: ("member", "active", "chat_member_event"),
                             602: ("member", "active", "chat_member_event"),
                             LAST.id: ("member", "active", "message_activity")}
    assert figure(m, "tgsync_events_total", route="bot_status", outcome="applied") == 1
    assert figure(m, "tgsync_events_total", route="chat_member_event", outcome="applied") == 6
    assert round_trips(m) > 0
    assert figure(m, "tgsync_work_backlog") == 0
    assert get(port, "/healthz") == (200, "ok\n")
    store.close()


def enqueue(broker, events):
    """What `serve --queue celery` enqueues, sent by a Celery app of its own (an app keeps the
    broker connection it first made, and each test here has its own broker database)."""
    from celery import Celery

    from tgsync_cli.core.codec import to_dict
    sender = Celery("tgsync-test", broker=broker)
    sender.conf.update(task_serializer="json", accept_content=["json"])
    try:
        for ev in events:
            sender.send_task("tgsync.apply_event", args=[to_dict(ev)], queue="tgsync")
    finally:
        sender.close()
