"""Several processes on one store end with the roster one process would have written: two
serve-like processes splitting one stream (with their own member caches, and with one Redis
cache), and a Celery worker with --concurrency 2. Compared member for member: status, role,
source, joined_at. Before clubs were looked up again, the other process's new clubs were
invisible for a minute and ~50 of ~2,100 members went missing."""

from __future__ import annotations

import shutil

import pytest

from tgsync_cli.bench.soak import _Redis
from tgsync_cli.bench.split_soak import run_split_soak
from tests.redis_server import redis_url

SAME = {"missing": 0, "extra": 0, "wrong_status": 0, "wrong_role": 0, "wrong_source": 0,
        "wrong_joined_at": 0}


def check(result):
    shutil.rmtree(result["workdir"], ignore_errors=True)
    assert {k: result[k] for k in SAME} == SAME, result
    assert result["members"] > 1000


def test_two_processes_with_their_own_caches_end_with_the_single_process_roster():
    check(run_split_soak(4000, seed=2))


@pytest.mark.redis
def test_two_processes_sharing_a_redis_cache_end_with_the_single_process_roster():
    check(run_split_soak(4000, seed=3, redis_url=redis_url()))


def test_a_celery_worker_with_concurrency_2_ends_with_the_single_process_roster(tmp_path):
    redis = _Redis(tmp_path)  # its own redis-server: no other run's worker takes these tasks
    if not redis.available:
        pytest.skip("redis-server is not installed")
    redis.start()
    try:
        check(run_split_soak(1500, seed=4, redis_url=redis.url, celery=True))
    finally:
        redis.kill()
