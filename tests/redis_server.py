"""The real redis-server `scripts/test` starts (TGSYNC_TEST_REDIS_URL); never a fake.

Missing under CI is a failure (the Redis and Celery stories must run there); locally the
tests are skipped with the reason.
"""

import os
import uuid

import pytest


def redis_url() -> str:
    url = os.environ.get("TGSYNC_TEST_REDIS_URL")
    if not url:
        reason = "TGSYNC_TEST_REDIS_URL is not set: run ./scripts/test (it starts a redis-server)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def unique_prefix() -> str:
    return f"tgsync-test:{uuid.uuid4().hex[:10]}"


class OwnRedis:
    """A redis-server of the test's own on a free loopback port, to stop and restart (outages).
    Its data survives a restart only through an explicit `save()` (an RDB file in `dir`)."""

    def __init__(self, dir):
        import shutil
        import socket

        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.dir = dir
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "OwnRedis":
        import subprocess
        import time

        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--dbfilename", "dump.rdb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def save(self) -> None:
        import redis

        redis.Redis.from_url(self.url).save()

    def kill(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
