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
