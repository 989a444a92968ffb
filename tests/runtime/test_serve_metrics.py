"""`serve --metrics`: /healthz, /readyz and /metrics scraped over loopback from a serve built on
the simulator's gateway, while a club's story unfolds through the live handlers.

The figures are read with prometheus_client's own parser, as Prometheus would read them.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.test_serve import (
    BOT,
    SG,
    StandInClient,
    pyro,  # noqa: F401 (a fixture: pyrogram's objects, built offline)
    roster,
)
from tests.worlds import Altered
from tgsync_cli import __version__
from tgsync_cli.app import make_engine
from tgsync_cli.core.errors import AdminRequired, StoreUnavailable
from tgsync_cli.ops.reconcile import reconcile_clubs
from tgsync_cli.runtime.metrics import Metrics
from tgsync_cli.runtime.observe import attach, instrument
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.runtime.serve import Runtime
from tgsync_cli.sim.world import SimGateway, World
from tgsync_cli.stores import open_store

NAMES = {1: "Aida", 2: "Ivan", 3: "Olga", 4: "Dana", 5: "Stranger", 6: "Timur"}


def world() -> World:
    """SRG Almaty: Aida created it, Ivan, Olga, Dana and Timur are in it, the bot is an admin."""
    members = [{"user": 1, "status": "creator"}] + [{"user": u, "status": "member"} for u in (2, 3, 4, 6)]
    members.append({"user": BOT, "status": "administrator"})
    w = World({"bot": {"id": BOT, "username": "aydarun_bot", "privacy_mode": False},
               "users": [{"id": i, "first_name": n} for i, n in NAMES.items()],
               "chats": [{"id": SG, "type": "supergroup", "title": "SRG Almaty", "members": members}]})
    w.started.add(4)  # Dana has opened the bot before: the reply to her reaches her
    return w


class Outage:
    """The store, with an outage switched on and off by the test (every call refused)."""

    def __init__(self, store):
        self.__dict__["_store"], self.__dict__["down"] = store, False

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if not callable(attr) or name.startswith("_") or name == "close":
            return attr

        def call(*args, **kwargs):
            if self.down:
                raise StoreUnavailable("connection refused (injected outage)")
            return attr(*args, **kwargs)
        return call


class GatedClient(StandInClient):
    """Connecting to Telegram takes as long as the test says."""

    def __init__(self):
        super().__init__(privacy_off=True)
        self.connect = threading.Event()

    async def start(self):
        while not self.connect.is_set():
            await asyncio.sleep(0.01)
        self.started = True


class Telegram:
    """The simulated Telegram, with its member lookups held up while `hold` is set."""

    def __init__(self, w):
        self.gw = SimGateway(w)
        self.hold = threading.Event()
        self.release = threading.Event()

    def get_member(self, chat_id, user_id):
        if self.hold.is_set():
            self.release.wait(30)
        return self.gw.get_member(chat_id, user_id)

    def __getattr__(self, name):
        return getattr(self.gw, name)


@pytest.fixture
def updates(pyro):  # noqa: F811 (the fixture imported above)
    """Telegram's updates as pyrogram's handlers receive them."""
    return pyro


@pytest.fixture
def served(tmp_path):
    w = world()
    tg = Telegram(w)
    store = Outage(open_store("memory:"))
    metrics = Metrics()
    timed, gateway = instrument(metrics, store, tg)
    engine = make_engine(timed, gateway, None, bot_id=BOT)
    spool = tmp_path / "pending-events.jsonl"
    pipeline = Pipeline(engine, spool_path=str(spool), backoff=(0.02, 0.05), checkpoint_seconds=0.05,
                        flush_seconds=3600)
    client = GatedClient()
    runtime = Runtime(client=client, loop=asyncio.new_event_loop(), engine=engine, bot_id=BOT,
                      pipeline=pipeline)
    reports = []
    runtime.on_started = reports.append
    observed = attach(runtime, metrics, "127.0.0.1", 0, store=store, spool_path=spool,
                      stuck_seconds=0.5, probe_seconds=0.05, drift_refresh_seconds=0)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    yield SimpleNamespace(runtime=runtime, client=client, tg=tg, store=store, world=w,
                          port=observed.port, reports=reports, spool=spool)
    runtime.request_stop("test over")
    client.connect.set()
    tg.release.set()
    thread.join(10)
    observed.close()
    runtime.loop.close()


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port):
    """{(sample name, ((label, value), …)): value} from /metrics, by prometheus_client's parser."""
    status, text = get(port, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def figure(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def round_trips(samples):
    return sum(v for (name, _), v in samples.items() if name == "tgsync_store_call_seconds_count")


def until(check, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def feed(runtime, handler, update):
    asyncio.run_coroutine_threadsafe(getattr(runtime, handler)(None, update), runtime.loop).result(10)


def settled(s):
    """Every accepted event done (backlog alone is 0 for a moment while the worker holds one)."""
    p = s.runtime.pipeline
    until(lambda: p.done >= p.accepted and p.backlog() == 0)


def test_the_endpoints_follow_a_club_s_first_hour(served, updates):
    s = served
    # connecting: alive, not ready yet, and the figures already answer
    assert get(s.port, "/healthz") == (200, "ok\n")
    status, why = get(s.port, "/readyz")
    assert status == 503 and why.startswith("starting:") and why.count("\n") == 1
    assert figure(scrape(s.port), "tgsync_started_timestamp_seconds") == 0

    s.client.connect.set()
    assert s.runtime.started.wait(10)
    until(lambda: get(s.port, "/readyz") == (200, "ready\n"))
    first = scrape(s.port)
    [build] = [dict(labels) for (name, labels) in first if name == "tgsync_build_info"]
    assert build["version"] == __version__ and build["role"] == "serve"
    assert figure(first, "tgsync_started_timestamp_seconds") > time.time() - 60
    assert figure(first, "tgsync_updates_received_total", kind="message") == 0
    assert s.reports[0].metrics.startswith("http://127.0.0.1:") and "this machine only" in s.reports[0].metrics

    feed(s.runtime, "on_member_updated", updates.bot_added())          # Aida adds the bot as admin
    feed(s.runtime, "on_member_updated", updates.join(2))              # Ivan joins
    feed(s.runtime, "on_message", updates.group_message(3))            # Olga writes
    feed(s.runtime, "on_message", updates.private(4, f"/start join_{SG}"))  # Dana presses the button
    settled(s)
    m = scrape(s.port)
    assert figure(m, "tgsync_updates_received_total", kind="chat_member") == 2
    assert figure(m, "tgsync_updates_received_total", kind="message") == 2
    for route in ("bot_status", "chat_member_event", "message_activity", "deep_link"):
        assert figure(m, "tgsync_events_total", route=route, outcome="applied") == 1, route
    assert figure(m, "tgsync_welcome_posts_total") == 1
    assert figure(m, "tgsync_private_messages_total", route="deep_link", delivered="true") == 1
    assert round_trips(m) > round_trips(first)
    assert figure(m, "tgsync_work_backlog") == 0
    assert time.time() - figure(m, "tgsync_last_update_timestamp_seconds") < 60
    assert 0 <= figure(m, "tgsync_newest_update_age_seconds") < 60
    assert ("tgsync_redis_degraded", ()) not in m  # no Redis cache here
    assert figure(m, "tgsync_ready") == 1
    assert roster(s.store) == {1: ("organizer", "active", "admin_import"),
                               2: ("member", "active", "chat_member_event"),
                               3: ("member", "active", "message_activity"),
                               4: ("member", "active", "manual_registration")}

    # Olga writes again: the hot path, counted as applied, with no store round trip
    feed(s.runtime, "on_message", updates.group_message(3, date=pyro_time(120)))
    settled(s)
    hot = scrape(s.port)
    assert figure(hot, "tgsync_events_total", route="message_activity", outcome="applied") == 2
    assert round_trips(hot) == round_trips(m)
    # last_seen is checkpointed to the spool, then written by a flush that empties it
    until(lambda: figure(scrape(s.port), "tgsync_spool_lines") > 0)
    assert figure(scrape(s.port), "tgsync_spool_bytes") > 0
    s.runtime.pipeline.flush_soon()
    until(lambda: figure(scrape(s.port), "tgsync_last_flush_timestamp_seconds") > 0)
    assert figure(scrape(s.port), "tgsync_last_flush_seconds") >= 0

    # a reconcile (cron, through the store) finds Timur, whom Telegram counts and the bot never met
    listing_refused = Altered(s.tg.gw, iter_member_pages=AdminRequired("CHAT_ADMIN_REQUIRED"))
    reconcile_clubs(s.store, listing_refused, None, True, datetime(2024, 12, 1, 12, 0))
    club_id = s.store.club_by_group(SG)["_id"]
    after = scrape(s.port)
    assert figure(after, "tgsync_reconcile_drift", club=club_id) == 1
    assert figure(after, "tgsync_reconcile_timestamp_seconds", club=club_id) > 0

    # labels name routes, outcomes, calls and club ids — never a person or a group's title
    values = {v for (_, labels), _ in after.items() for _, v in labels}
    for person in list(NAMES.values()) + [str(u) for u in NAMES] + ["SRG Almaty", str(SG)]:
        assert person not in values


def pyro_time(seconds):
    from tests.pyrogram_offline import T0
    return T0 + seconds


def test_a_stuck_worker_turns_healthz_red_and_back(served, updates):
    s = served
    s.client.connect.set()
    assert s.runtime.started.wait(10)
    feed(s.runtime, "on_member_updated", updates.bot_added())
    settled(s)
    s.tg.hold.set()  # Telegram stops answering member lookups: the deep link waits on one
    feed(s.runtime, "on_message", updates.private(4, f"/start join_{SG}"))
    feed(s.runtime, "on_message", updates.group_message(3))
    _, why = until(lambda: (r := get(s.port, "/healthz"))[0] == 503 and r)
    assert why.startswith("worker stuck: no event done for") and "2 pending" in why
    s.tg.hold.clear()
    s.tg.release.set()
    settled(s)
    until(lambda: get(s.port, "/healthz") == (200, "ok\n"))
    assert roster(s.store)[4] == ("member", "active", "manual_registration")


def test_a_store_outage_turns_readyz_red_and_back_and_nothing_is_lost(served, updates):
    s = served
    s.client.connect.set()
    assert s.runtime.started.wait(10)
    feed(s.runtime, "on_member_updated", updates.bot_added())
    settled(s)
    until(lambda: get(s.port, "/readyz") == (200, "ready\n"))
    s.store.down = True
    _, why = until(lambda: (r := get(s.port, "/readyz"))[0] == 503 and r)
    assert why == "store unavailable: connection refused (injected outage)\n"
    feed(s.runtime, "on_member_updated", updates.join(2))  # Ivan joins during the outage: it waits
    until(lambda: figure(scrape(s.port), "tgsync_retries_total") > 0)
    m = scrape(s.port)
    assert figure(m, "tgsync_store_down") == 1 and figure(m, "tgsync_work_backlog") == 1
    assert figure(m, "tgsync_ready") == 0
    assert get(s.port, "/healthz") == (200, "ok\n")  # retrying is progress: no restart wanted
    s.store.down = False
    until(lambda: get(s.port, "/readyz") == (200, "ready\n"))
    settled(s)
    assert roster(s.store)[2] == ("member", "active", "chat_member_event")
    m = scrape(s.port)
    assert figure(m, "tgsync_store_down") == 0
    assert figure(m, "tgsync_events_total", route="chat_member_event", outcome="applied") == 1
    assert figure(m, "tgsync_store_errors_total", call="observe") >= 1


# -- tgsync status ------------------------------------------------------------------------------------
def test_status_reads_a_running_serve_for_a_person_and_for_a_script(served, updates):
    import json

    from typer.testing import CliRunner

    from tgsync_cli.cli import app
    s = served
    address = f"127.0.0.1:{s.port}"
    starting = CliRunner().invoke(app, ["status", "--metrics", address])
    assert starting.exit_code == 0, starting.output
    assert f"tgsync serve at {address}: not ready: starting:" in starting.stdout
    s.client.connect.set()
    assert s.runtime.started.wait(10)
    feed(s.runtime, "on_member_updated", updates.bot_added())
    feed(s.runtime, "on_message", updates.group_message(3))
    settled(s)
    until(lambda: get(s.port, "/readyz")[0] == 200)
    out = json.loads(CliRunner().invoke(app, ["status", "--json", "--metrics", address]).stdout)
    assert (out["ready"], out["healthy"], out["backlog"], out["redis"]) == (True, True, 0, None)
    assert out["updates"] == {"bot_stopped": 0, "chat_join_request": 0, "chat_member": 1, "message": 1}
    assert out["events"]["message_activity"] == {"applied": 1}
    assert out["up_since"].endswith("Z") and out["last_update"].endswith("Z")
    assert out["store"]["up"] is True and out["store"]["round_trips"] > 0
    human = CliRunner().invoke(app, ["status", "--metrics", address])
    assert human.exit_code == 0
    for words in (f"tgsync serve at {address}: ready", "up since", "last update", "backlog",
                  "0 events", "spool", "store", "ok (", "Redis", "not used"):
        assert words in human.stdout, words
    assert max(len(line) for line in human.stdout.splitlines()) <= 80


def test_status_with_nothing_listening_is_one_line_and_exit_1(bare):
    import socket

    from typer.testing import CliRunner

    from tgsync_cli.cli import app
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (bare / "tgsync.toml").write_text(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: nothing answers at 127.0.0.1:{port} (") and "metrics.listen" in line


def test_redis_down_shows_as_degraded_and_work_goes_on(tmp_path, updates):
    """The Redis member cache cannot be reached: the figure says so, `status` too, and the
    club's events are still applied against the store."""
    import json
    import socket

    from typer.testing import CliRunner

    from tgsync_cli.cli import app
    from tgsync_cli.runtime.redis_cache import RedisMemberCache
    with socket.socket() as sock:  # a loopback port where no Redis listens
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    cache = RedisMemberCache.from_url(f"redis://127.0.0.1:{dead}/0", retry_seconds=3600)
    store, metrics = open_store("memory:"), Metrics()
    timed, gateway = instrument(metrics, store, SimGateway(world()))
    engine = make_engine(timed, gateway, None, cache=cache, bot_id=BOT)
    runtime = Runtime(client=StandInClient(), loop=asyncio.new_event_loop(), engine=engine,
                      bot_id=BOT, pipeline=Pipeline(engine, backoff=(0.01, 0.02)))
    observed = attach(runtime, metrics, "127.0.0.1", 0, store=store, probe_seconds=0.05)
    try:
        runtime.pipeline.start()
        asyncio.run(runtime.on_member_updated(None, updates.bot_added()))
        asyncio.run(runtime.on_member_updated(None, updates.join(2)))
        settled(SimpleNamespace(runtime=runtime))
        m = scrape(observed.port)
        assert figure(m, "tgsync_redis_degraded") == 1
        assert figure(m, "tgsync_events_total", route="chat_member_event", outcome="applied") == 1
        assert roster(store)[2] == ("member", "active", "chat_member_event")
        out = CliRunner().invoke(app, ["status", "--json", "--metrics", f"127.0.0.1:{observed.port}"])
        assert json.loads(out.stdout)["redis"] == "degraded"
    finally:
        runtime.pipeline.stop(timeout=2)
        observed.close()
        cache.close()
        runtime.loop.close()


# -- the command -----------------------------------------------------------------------------------
def serve_cli(monkeypatch, bare, *args):
    """`tgsync serve ARGS` with a client that stops itself (SIGINT) once it knows who it is."""
    import os
    import signal

    from typer.testing import CliRunner

    from tests.runtime.test_serve import with_credentials
    from tgsync_cli.cli import app
    with_credentials(monkeypatch, bare)
    made = []

    class SelfStopping(StandInClient):
        async def get_me(self):
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)
            return await super().get_me()

    def make_client(*a, **kw):
        made.append(SelfStopping())
        return made[-1]
    monkeypatch.setattr("tgsync_cli.runtime.serve.make_client", make_client)
    return CliRunner().invoke(app, ["serve", "--store", "memory:", *args]), made


def test_serve_says_where_its_endpoint_listens(monkeypatch, bare):
    result, made = serve_cli(monkeypatch, bare, "--metrics", "127.0.0.1:0")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())  # at 80 columns the line wraps
    assert "health and metrics: http://127.0.0.1:" in said
    assert "/healthz, /readyz (this machine only)" in said
    assert made and made[0].stopped


def test_a_non_loopback_address_needs_an_explicit_setting(monkeypatch, bare):
    result, made = serve_cli(monkeypatch, bare, "--metrics", "0.0.0.0:9108")
    assert result.exit_code == 1 and not made  # refused before anything connects
    assert result.stderr.strip().splitlines() == [
        ("error: --metrics 0.0.0.0:9108: not a loopback address; set metrics.allow_remote = true "
         "to serve health and metrics to other machines")]
    (bare / "tgsync.toml").write_text('[metrics]\nlisten = "10.1.2.3:9108"\n')
    result, made = serve_cli(monkeypatch, bare)
    assert result.exit_code == 1 and not made and "metrics.listen 10.1.2.3:9108: not a loopback" in result.stderr


def test_allowed_remote_is_said_in_the_start_up_report():
    from tgsync_cli.runtime.endpoint import checked_address, describe
    assert checked_address("0.0.0.0:9108", allow_remote=True) == ("0.0.0.0", 9108)
    assert "reachable from other machines" in describe("0.0.0.0", 9108)
    assert checked_address("[::1]:9108", allow_remote=False) == ("::1", 9108)
    assert "this machine only" in describe("::1", 9108)


def test_a_malformed_address_is_a_usage_error(monkeypatch, bare):
    result, made = serve_cli(monkeypatch, bare, "--metrics", "9108")
    assert result.exit_code == 2 and not made and "HOST:PORT" in result.output


def test_a_port_in_use_is_one_line_before_telegram_is_contacted(monkeypatch, bare):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result, made = serve_cli(monkeypatch, bare, "--metrics", f"127.0.0.1:{port}")
    assert result.exit_code == 1 and (not made or not made[0].started)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: health and metrics endpoint 127.0.0.1:{port}: cannot listen (")


def test_while_telegram_reconnects_readyz_says_so(served, updates):
    """pyrogram restarts its session after a network drop: not ready meanwhile, alive all along."""
    s = served
    s.client.session = SimpleNamespace(is_started=threading.Event())
    s.client.session.is_started.set()
    s.client.connect.set()
    assert s.runtime.started.wait(10)
    until(lambda: get(s.port, "/readyz") == (200, "ready\n"))
    s.client.session.is_started.clear()  # the connection dropped; pyrogram is reconnecting
    assert get(s.port, "/readyz") == (503, "Telegram connection lost: reconnecting\n")
    assert get(s.port, "/healthz") == (200, "ok\n")
    s.client.session.is_started.set()
    assert get(s.port, "/readyz") == (200, "ready\n")
