"""The Redis member cache: what one process learns, every process knows; a leave evicts everywhere."""

import threading
import multiprocessing as mp
from datetime import datetime, timedelta

import pytest

from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.redis_cache import RedisMemberCache
from tgsync_cli.stores import open_store
from tests.redis_server import redis_url, unique_prefix
from tests.worlds import engine_with_club

pytestmark = pytest.mark.redis

CHAT = ChatRef(-100808, "supergroup", "Track Tuesdays")
T0 = datetime(2025, 6, 3, 18, 0)
ANNA = Person(501, first_name="Anna")


@pytest.fixture
def url():
    return redis_url()


@pytest.fixture
def prefix():
    return unique_prefix()


def cache(url, prefix, **kw):
    return RedisMemberCache.from_url(url, ttl_seconds=kw.pop("ttl", 3600), prefix=prefix, **kw)


def test_a_member_added_by_one_process_is_known_to_another(url, prefix):
    a, b = cache(url, prefix), cache(url, prefix)
    try:
        assert not b.is_active("club_x", 501)
        a.add("club_x", 501)
        assert b.is_active("club_x", 501)
        assert not b.is_active("club_y", 501)  # membership is per club
    finally:
        a.close(), b.close()


def test_keys_carry_the_ttl_so_forgotten_entries_expire_in_redis(url, prefix):
    c = cache(url, prefix, ttl=120)
    try:
        c.add("club_x", 7)
        ttl = c.r.ttl(f"{prefix}:club_x:7")
        assert 0 < ttl <= 120
    finally:
        c.close()


def test_warm_up_is_one_round_trip_per_chunk_not_per_member(url, prefix):
    c = cache(url, prefix)
    sent = []
    real = c.r.pipeline

    def counting_pipeline(*a, **kw):
        p = real(*a, **kw)
        execute = p.execute
        p.execute = lambda *x, **y: (sent.append(len(p.command_stack)), execute(*x, **y))[1]
        return p

    c.r.pipeline = counting_pipeline
    other = cache(url, prefix)
    try:
        c.warm(("club_w", tid) for tid in range(2500))
        assert sent == [1000, 1000, 500]
        assert other.is_active("club_w", 0) and other.is_active("club_w", 2499)
    finally:
        c.close(), other.close()


def test_an_eviction_reaches_the_near_cache_of_every_process(url, prefix):
    a, b = cache(url, prefix), cache(url, prefix)
    try:
        a.add("club_x", 9)
        assert b.is_active("club_x", 9)  # now held in b's near-cache
        a.evict("club_x", 9)
        assert _eventually(lambda: not b.is_active("club_x", 9))
        assert not a.is_active("club_x", 9)
    finally:
        a.close(), b.close()


def test_with_redis_gone_a_lookup_is_a_miss_so_the_store_decides(prefix):
    c = RedisMemberCache.from_url("redis://127.0.0.1:1/0", prefix=prefix, listen=False)
    assert c.is_active("club_x", 1) is False


def test_engine_on_redis_cache_hot_path_makes_no_store_call(url, prefix, tmp_path):
    store = open_store(f"file:{tmp_path}/store")
    e = engine_with_club(store, CHAT, T0, cache=cache(url, prefix))
    try:
        e.handle(MemberStatusChanged(CHAT, ANNA, MemberState("member"), T0 + timedelta(minutes=1)))
        before = store.ops
        for i in range(20):
            e.handle(MessageSeen(CHAT, ANNA, T0 + timedelta(minutes=2 + i)))
        assert store.ops == before
        assert e.seen.newest((e.club(CHAT.id).club_id, ANNA.id)) == T0 + timedelta(minutes=21)
    finally:
        e.cache.close()
        store.close()


# -- two processes ------------------------------------------------------------------------------
def _other_process(url, prefix, store_uri, go, done, out):
    """A second `serve`: its own engine and near-cache, the same store and Redis."""
    store = open_store(store_uri)
    c = RedisMemberCache.from_url(url, prefix=prefix)
    e = Engine(store, OfflineGateway(), c, bot_id=9000)
    e.start()
    club = e.club(CHAT.id).club_id
    out.put(("before", c.is_active(club, ANNA.id)))
    evicted, drop = threading.Event(), c._drop

    def dropped(payload):  # the eviction arrives by pub/sub, asynchronously: a barrier, no polling
        drop(payload)
        if payload in (f"{club}:{ANNA.id}", "*"):  # hers, or all (after a reconnect)
            evicted.set()
    c._drop = dropped
    go.set()  # the first process may now apply the leave
    done.wait(20)
    ok = evicted.wait(30) and not c.is_active(club, ANNA.id)
    ops = store.ops
    e.handle(MessageSeen(CHAT, ANNA, T0 - timedelta(hours=1)))  # older than the leave: stays left
    out.put(("after", not ok, store.ops > ops))
    c.close()


def test_a_leave_applied_in_one_process_evicts_the_member_in_the_other(url, prefix, tmp_path):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    e = engine_with_club(store, CHAT, T0 - timedelta(days=1), cache=cache(url, prefix))
    e.handle(MemberStatusChanged(CHAT, ANNA, MemberState("member"), T0 - timedelta(days=1)))
    ctx = mp.get_context("spawn")
    go, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=_other_process, args=(url, prefix, uri, go, done, out))
    p.start()
    try:
        assert go.wait(60)
        assert out.get(timeout=10) == ("before", True)  # the other process has Anna hot
        e.handle(MemberStatusChanged(CHAT, ANNA, MemberState("left"), T0))
        done.set()
        kind, still_active_there, asked_store = out.get(timeout=60)
        assert kind == "after"
        assert not still_active_there
        assert asked_store  # her next message there takes the slow path, not the hot one
        assert store.member(e.club(CHAT.id).club_id, ANNA.id)["status"] == "left"
    finally:
        p.join(30)
        e.cache.close()
        store.close()


def _eventually(check, tries=200, pause=0.02):
    import time

    for _ in range(tries):
        if check():
            return True
        time.sleep(pause)
    return False


@pytest.fixture
def own_redis(tmp_path):
    from tests.redis_server import OwnRedis

    server = OwnRedis(tmp_path)
    yield server
    server.kill()


def test_redis_dying_mid_run_stops_nothing_and_a_leave_made_meanwhile_is_evicted_when_it_is_back(
        own_redis, prefix, tmp_path, caplog):
    import logging
    import time

    from tgsync_cli.runtime.pipeline import Pipeline

    boris = Person(502, first_name="Boris")
    own_redis.start()
    store = open_store(f"file:{tmp_path}/store")
    c = RedisMemberCache.from_url(own_redis.url, prefix=prefix, retry_seconds=0.1)
    engine = engine_with_club(store, CHAT, T0, cache=c)
    for who in (ANNA, boris):
        engine.handle(MemberStatusChanged(CHAT, who, MemberState("member"), T0 + timedelta(minutes=1)))
    club_id = engine.club(CHAT.id).club_id
    own_redis.save()  # Anna's key will be back after the restart: only a replayed eviction removes it
    own_redis.kill()
    caplog.set_level(logging.INFO, logger="tgsync")
    pipe = Pipeline(engine, max_pending=5)
    pipe.start()
    events = [MemberStatusChanged(CHAT, ANNA, MemberState("left"), T0 + timedelta(minutes=2))]
    events += [MessageSeen(CHAT, boris, T0 + timedelta(minutes=3 + i)) for i in range(20)]
    events += [MemberStatusChanged(CHAT, Person(503, first_name="Vera"), MemberState("member"),
                                   T0 + timedelta(minutes=30))]
    for ev in events:  # more than max_pending: a stalled pipeline would block here
        pipe.submit(ev, timeout=30)
    deadline = time.monotonic() + 30
    while pipe.backlog() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pipe.backlog() == 0 and pipe.applied == len(events) and pipe.failed == []
    roster = {m["telegram_id"]: m["status"] for m in store.club_by_group(CHAT.id)["members"]}
    assert roster == {501: "left", 502: "active", 503: "active"}
    down = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(down) == 1 and "working against the store" in down[0].getMessage()

    own_redis.start()
    assert own_redis_has(own_redis, prefix, club_id, 501)  # the stale key came back with the data
    deadline = time.monotonic() + 30
    while not c.available and time.monotonic() < deadline:
        pipe.submit(MessageSeen(CHAT, boris, T0 + timedelta(hours=1)))
        time.sleep(0.05)
    pipe.stop(timeout=10)
    assert [r.getMessage() for r in caplog.records if r.getMessage().endswith("is back")] == [
        "member cache (Redis) is back"]
    assert not own_redis_has(own_redis, prefix, club_id, 501)  # the leave's eviction was replayed
    c.close()


def own_redis_has(server, prefix, club_id, tid):
    import redis

    return bool(redis.Redis.from_url(server.url).exists(f"{prefix}:{club_id}:{tid}"))


def test_replay_with_redis_down_at_start_applies_everything_with_one_warning(tmp_path):
    import json as _json
    import socket

    from typer.testing import CliRunner

    from tests import botapi_updates as U
    from tgsync_cli.cli import app

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    s.close()
    f = tmp_path / "updates.jsonl"
    f.write_text("".join(_json.dumps(u) + "\n" for u in (
        U.bot_added(1_700_000_000), U.member(1_700_000_100, 5, "left", "member"),
        U.message(1_700_000_200, 5), U.message(1_700_000_300, 6))))
    env = {"TGSYNC_CACHE_BACKEND": "redis", "TGSYNC_CACHE_REDIS_URL": dead}
    store = f"file:{tmp_path}/store"
    r = CliRunner().invoke(app, ["replay", str(f), "--store", store], env=env)
    assert r.exit_code == 0, r.output
    roster = _json.loads(CliRunner().invoke(app, ["roster", "-1001700", "--json", "--store", store]).stdout)
    assert sorted(m["telegram_id"] for m in roster["members"]) == [5, 6]
