"""Two processes splitting one update stream end with the single-process roster, member for member.

The stream is the soak's (bench: sim/faults.py `soak_updates`: 40 clubs created first, then
messages, joins, leaves, kicks, promotions, deep links, 2 % delivered twice, 1 % late). Either two
serve-like processes (Pipeline + engine each, on one `file:` store, with their own member cache or
one Redis cache) take every other update, each at its own pace, or a Celery worker with
`--concurrency 2` (two prefork processes) takes every update from the queue. The reference is
one engine applying the whole stream in order. Compared per member: status, role, source and
joined_at (what an organizer sees); printed as members missing and fields that differ.

    python -m tgsync_cli.bench.split_soak child STORE SPOOL UPDATES PART PARTS REDIS
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

FIELDS = ("status", "role", "source", "joined_at")


def _engine(store, redis_url: str, prefix: str = "tgsync-split"):
    from tgsync_cli.core.cache import MemoryMemberCache
    from tgsync_cli.core.engine import Engine
    from tgsync_cli.core.gateway import OfflineGateway

    if redis_url != "-":
        from tgsync_cli.runtime.redis_cache import RedisMemberCache

        cache: Any = RedisMemberCache.from_url(redis_url, prefix=prefix)
    else:
        cache = MemoryMemberCache()
    engine = Engine(store, OfflineGateway(9000), cache, bot_id=9000)
    engine.start()
    return engine


def child(store_uri: str, spool: str, updates: str, part: int, parts: int, redis_url: str) -> None:
    import logging

    from tgsync_cli.runtime.pipeline import Pipeline
    from tgsync_cli.sources.botapi import parse_update
    from tgsync_cli.stores import open_store

    logging.getLogger("tgsync").setLevel(logging.ERROR)
    store = open_store(store_uri)
    # one cache for this run's processes, none of an earlier run's entries
    engine = _engine(store, redis_url, prefix=f"tgsync-split:{Path(store_uri[5:]).parent.name}")
    pipe = Pipeline(engine, spool_path=spool, backoff=(0.01, 0.05), flush_seconds=2.0)
    pipe.start()
    with open(updates, "rb") as fh:
        for i, line in enumerate(fh):
            if i % parts == part:
                for ev in parse_update(json.loads(line)):
                    pipe.submit(ev)
    deadline = time.monotonic() + 120
    while (pipe.backlog() or pipe.stats()["waiting_for_club"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    pipe.stop(timeout=60)
    engine.flush()
    print(json.dumps(pipe.stats()), flush=True)


def reference(updates: List[dict]) -> Dict[tuple, dict]:
    from tgsync_cli.sources.botapi import parse_update
    from tgsync_cli.stores import open_store

    store = open_store("memory:")
    engine = _engine(store, "-")
    for u in updates:
        for ev in parse_update(u):
            engine.handle(ev)
    engine.flush()
    return roster_of(store)


def roster_of(store) -> Dict[tuple, dict]:
    out = {}
    for club in store.export()["clubs"]:
        for m in club.get("members") or []:
            out[(club["telegram_group_id"], m["telegram_id"])] = {k: m.get(k) for k in FIELDS}
    return out


def compare(want: Dict[tuple, dict], got: Dict[tuple, dict]) -> Dict[str, Any]:
    diff: Dict[str, Any] = {"members": len(want), "missing": sum(1 for k in want if k not in got),
            "extra": sum(1 for k in got if k not in want)}
    for f in FIELDS:
        diff[f"wrong_{f}"] = sum(1 for k, m in want.items() if k in got and got[k][f] != m[f])
    return diff


def run_split_soak(n: int = 6000, seed: int = 1, redis_url: Optional[str] = None, celery: bool = False,
                   workdir: Optional[str] = None) -> Dict[str, Any]:
    from tgsync_cli.sim.faults import soak_updates
    from tgsync_cli.stores import open_store

    work = Path(workdir or tempfile.mkdtemp(prefix="tgsync-split-"))
    updates = soak_updates(n, seed=seed)
    upath = work / "updates.jsonl"
    upath.write_text("".join(json.dumps(u) + "\n" for u in updates))
    uri = f"file:{work / 'store'}"
    open_store(uri).close()
    started = time.monotonic()
    if celery:
        _run_celery(uri, upath, redis_url or "", work)
    else:
        procs = [subprocess.Popen([sys.executable, "-m", "tgsync_cli.bench.split_soak", "child", uri,
                                   str(work / f"spool-{part}.jsonl"), str(upath), str(part), "2",
                                   redis_url or "-"], stdout=subprocess.PIPE, text=True)
                 for part in range(2)]
        for p in procs:
            p.communicate(timeout=900)
    seconds = time.monotonic() - started
    store = open_store(uri)
    got = roster_of(store)
    store.close()
    result = compare(reference(updates), got)
    result.update(updates=n, seconds=round(seconds, 1), workdir=str(work),
                  way="celery --concurrency 2" if celery else
                  ("two processes, Redis cache" if redis_url else "two processes, own caches"))
    return result


def _run_celery(uri: str, upath: Path, broker: str, work: Path) -> None:
    """A real `celery worker --concurrency 2` (prefork) on the store; every update enqueued."""
    import redis

    from tgsync_cli.core.codec import to_dict
    from tgsync_cli.runtime import celery_queue
    from tgsync_cli.sources.botapi import parse_update

    redis.Redis.from_url(broker).delete(celery_queue.QUEUE)
    env = {**os.environ, "TGSYNC_QUEUE_BROKER_URL": broker, "TGSYNC_STORE_URI": uri,
           "TGSYNC_SYNC_LAST_SEEN_FLUSH_SECONDS": "3600"}
    log = (work / "worker.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tgsync_cli.runtime.celery_queue",
                             "worker", "--pool=prefork", "--concurrency=2", "-Q", celery_queue.QUEUE,
                             "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    from celery import Celery

    sender = Celery("tgsync-split-soak", broker=broker)  # its own app: the product's stays as it is
    sender.conf.update(task_serializer="json", accept_content=["json"])
    try:
        with upath.open("rb") as fh:
            for line in fh:
                for ev in parse_update(json.loads(line)):
                    sender.send_task("tgsync.apply_event", args=[to_dict(ev)], queue=celery_queue.QUEUE)
        client = redis.Redis.from_url(broker)
        deadline = time.monotonic() + 600
        quiet = 0
        while time.monotonic() < deadline and quiet < 3:  # empty queue, nothing in flight, a while
            busy = client.llen(celery_queue.QUEUE) or client.hlen("unacked")
            quiet = 0 if busy else quiet + 1
            time.sleep(1.0)
    finally:
        sender.close()
        proc.send_signal(signal.SIGTERM)  # the workers flush what they saw on the way out
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "child":
        a = sys.argv[2:]
        child(a[0], a[1], a[2], int(a[3]), int(a[4]), a[5])
    else:
        sys.exit("usage: python -m tgsync_cli.bench.split_soak child STORE SPOOL UPDATES PART PARTS REDIS")
