"""The benchmark on a tiny workload: its JSON has every promised figure, our side ends with the
right roster, and it makes fewer round trips than the seed (behaviour, not timing)."""

import json

import pytest

from tgsync_cli.bench import throughput as bench
from tgsync_cli.bench.workload import T0

KEYS = {"db_ops", "db_ops_seed", "db_ops_seed_nocache", "db_ops_ratio_vs_seed", "throughput_events_per_s",
        "throughput_ratio_vs_seed", "p50_us", "p99_us", "bytes_per_cached_member", "db_ops_lower_bound",
        "messages_scope"}
TINY = ["--json", "--days", "2", "--clubs", "2", "--members", "40", "--messages-per-day", "200", "--runs", "1"]


def run_json(capsys, *args):
    code = bench.main(TINY + list(args))
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_tiny_benchmark_reports_every_figure_and_beats_the_seed_on_round_trips(capsys):
    out = run_json(capsys)
    assert KEYS <= set(out)
    assert out["messages_scope"] == "club"
    assert out["roster_check"] == "ok"
    assert out["db_ops_lower_bound"] <= out["db_ops"] < out["db_ops_seed"] < out["db_ops_seed_nocache"]
    assert out["bytes_per_cached_member"] > 0


@pytest.mark.parametrize("scope, messages", [("club", 2 * 2 * 200), ("total", 2 * 200)])
def test_messages_a_day_are_read_per_club_or_in_total_as_asked(capsys, scope, messages):
    out = run_json(capsys, "--messages-scope", scope, "--no-seed-nocache")
    assert out["messages_scope"] == scope
    assert out["messages"] == messages  # 2 days × (2 clubs ×) 200
    assert f"messages_scope={scope}" in out["workload"]
    assert out["roster_check"] == "ok"
    assert out["db_ops"] < out["db_ops_seed"]


def test_an_unknown_scope_is_one_line_error(capsys):
    assert bench.main(["--messages-scope", "week"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --messages-scope must be club or total (got 'week')"]


def test_same_seed_same_workload():
    a, b = bench.generate(2, 20, 2, 100), bench.generate(2, 20, 2, 100)
    assert [(t, repr(e)) for t, e in a.events] == [(t, repr(e)) for t, e in b.events]
    assert sum(1 for _, e in a.events if e == bench.RESTART) == 1


def test_the_serve_path_parses_bot_api_json_and_still_ends_with_the_right_roster(capsys):
    out = run_json(capsys, "--path", "serve", "--no-seed-nocache")
    assert out["path"] == "serve" and out["roster_check"] == "ok"
    # both figures are reported; how they compare is the benchmark's to print, not a test's
    assert out["throughput_events_per_s"] > 0 and out["throughput_without_flush_events_per_s"] > 0


def test_the_scale_table_starts_with_one_query_and_rewarms_only_what_changed(tmp_path):
    from tgsync_cli.bench import scale

    [row] = scale.per_clubs(str(tmp_path), counts=(3,), members=20)
    assert row["start_queries"] == 1 and row["members"] == 60


def test_on_mongodb_the_same_workload_ends_with_the_same_roster_near_its_floor(capsys):
    """The MongoDB backend (mongomock) replays the workload too: right roster, two round trips a
    newcomer at the floor, and still far fewer round trips than the seed."""
    out = run_json(capsys, "--mongodb", "--no-seed-nocache")
    assert out["roster_check_mongodb"] == "ok"
    assert out["db_ops_lower_bound_mongodb"] == out["db_ops_lower_bound"] + out["joins"]
    assert out["db_ops_lower_bound_mongodb"] <= out["db_ops_mongodb"] < out["db_ops_seed"]


def test_the_seed_store_cost_is_round_trips_times_latency_plus_its_codec_never_the_emulator(capsys):
    """Wall time at each stated latency is the side's CPU plus its round trips × that latency; the
    seed's CPU carries pymongo's BSON codec for what it sends and receives."""
    out = run_json(capsys, "--no-seed-nocache")
    assert out["codec_seconds_seed"] > 0
    assert out["cpu_seconds_seed"] >= out["codec_seconds_seed"]
    for lat in (0.2, 1, 5):
        tag = f"{lat:g}ms"
        assert out[f"wall_s_seed_{tag}"] == pytest.approx(
            out["cpu_seconds_seed"] + out["db_ops_seed"] * lat / 1000, abs=1e-3)
        assert out[f"wall_s_ours_{tag}"] == pytest.approx(out["cpu_seconds"] + out["db_ops"] * lat / 1000,
                                                          abs=1e-3)
        assert f"wall_ratio_vs_seed_{tag}" in out


def test_the_seed_looks_in_its_member_cache_before_its_club_cache():
    """A known member whose club entry expired costs the seed nothing while the member entry lives."""
    from tgsync_cli.bench.sides import SeedDB, SeedRoute4, SimClock

    w = bench.generate(1, 10, 1, 50)
    clock = SimClock()
    seed = SeedRoute4(SeedDB(bench.starting_documents(w)), clock)
    chat, member = w.clubs[0], w.initial[w.clubs[0].id][1]
    msg = bench.MessageSeen(chat, member, T0)
    seed.handle(msg)
    ops = seed.db.ops
    seed.clubs_cache.clear()
    seed.handle(msg)
    assert seed.db.ops == ops


def test_against_a_server_both_sides_are_measured_and_the_bench_leaves_no_database_behind():
    """`--mongodb-uri` runs the seed and our MongoDB store on the server (here a mongomock client
    stands in for one: no server exists on this machine)."""
    import mongomock

    client = mongomock.MongoClient()
    out = bench.run(clubs=2, members=40, days=2, messages_per_day=200, include_nocache=False,
                    mongo_client=client)
    assert out["roster_check"] == "ok" and out["roster_check_mongodb"] == "ok"
    assert out["wall_s_measured_seed"] > 0 and out["wall_s_measured_mongodb"] > 0
    assert out["db_ops_mongodb"] < out["db_ops_seed"]
    assert not [n for n in client.list_database_names() if n.startswith("tgsync_bench")]


def test_an_unreachable_server_is_one_line_naming_the_uri_without_its_password(capsys):
    assert bench.main(["--mongodb-uri", "mongodb://bench:hunter2@127.0.0.1:1/x", "--quick"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the server" in err[0] and "hunter2" not in err[0]


def test_three_runs_report_min_median_max_of_what_moved(capsys):
    out = run_json(capsys, "--no-seed-nocache", "--runs", "3")
    assert out["runs"] == 3 and out["machine"]["cpus"] >= 1
    for key, (lo, med, hi) in out["spread"].items():
        assert lo <= med <= hi and out[key] == pytest.approx(med)
    assert "db_ops" not in out["spread"]  # round trips do not move: the workload is the same


def test_the_mtproto_path_decrypts_what_telegram_would_send_and_applies_every_message():
    """Encrypted server packets go through pyrogram's session crypto, Client.handle_updates and
    its dispatcher into our handlers, the pipeline and the engine: every message is applied, and
    the report has a figure for every stage."""
    from tgsync_cli.bench import mtproto

    out = mtproto.run(n=120, rounds=1, quick=True)
    assert out["mtproto_messages"] == 120
    # warm-up, one timed round, one instrumented pass: each message applied three times a rig
    assert set(out["mtproto_applied"].values()) == {120 * 3}
    stages = out["mtproto_slow_stages_us"]
    assert set(stages) == set(mtproto.STAGES)
    assert stages["Message._parse"] > 0 and stages["decrypt + TL read"] > 0 and stages["engine"] > 0
    assert 0 < out["mtproto_slow_our_share"] < 1
    # serve's journal is priced apart (the rigs have none), and the speedup with it beside
    assert "journal_us_per_event" in out and out["mtproto_fast_path_speedup_with_journal"] > 0


def test_a_packet_with_a_wrong_key_is_refused_by_pyrogram_as_telegram_s_would_be():
    """The packets are real MTProto: pyrogram's own checks reject one whose key does not match."""
    from io import BytesIO

    import pytest as _pytest
    from pyrogram.crypto.mtproto import unpack
    from pyrogram.errors import SecurityCheckMismatch

    from tgsync_cli.bench import mtproto

    [pkt] = mtproto.packets(bench.generate(1, 10, 1, 20), 1)
    msg = unpack(BytesIO(pkt), mtproto.SESSION_ID, mtproto.AUTH_KEY, mtproto.AUTH_KEY_ID)
    assert type(msg.body).__name__ == "Updates"
    other = bytes(reversed(mtproto.AUTH_KEY))
    with _pytest.raises(SecurityCheckMismatch):
        unpack(BytesIO(pkt), mtproto.SESSION_ID, other, mtproto.AUTH_KEY_ID)


def test_two_replay_processes_on_one_store_both_finish_and_lose_nothing():
    """Real processes, one store: every membership both wrote is there (the bench checks it
    after every round and would raise), and the report has the ratio."""
    from tgsync_cli.bench import writers

    out = writers.run(people=60, rounds=1)
    assert out["two_writers_ratio"] > 0 and out["writers_events_per_process"] == 180
    # the machine's own two-process ceiling, measured in the same round, and the writers against it
    assert out["machine_two_process_ratio"] > 0
    versus = out["two_writers_ratio_runs"][1] / out["machine_two_process_ratio"]
    assert abs(out["two_writers_vs_machine"] - versus) < 0.05 * versus + 0.01


def test_scale_and_mtproto_print_one_json_object_with_the_figures_a_script_holds_targets_to(capsys, monkeypatch):
    """`--scale --path mtproto --json`: one object with the four medians (sizes shrunk here)."""
    from tgsync_cli.bench import mtproto, scale, writers

    per_member, per_clubs, cache_scale, run = scale.per_member, scale.per_clubs, scale.cache_scale, writers.run
    monkeypatch.setattr(mtproto, "main", lambda j, q: (0, mtproto.run(n=60, rounds=1, quick=True)))
    monkeypatch.setattr(scale, "per_member", lambda root, sizes: per_member(root, (300,)))
    monkeypatch.setattr(scale, "per_clubs", lambda root, counts: per_clubs(root, (3,), 40))
    monkeypatch.setattr(scale, "cache_scale", lambda sizes: cache_scale((20_000,)))
    monkeypatch.setattr(writers, "run", lambda **kw: run(people=30, rounds=1))
    assert bench.main(["--scale", "--path", "mtproto", "--json", "--quick"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    for key in ("mtproto_fast_path_speedup", "cache_bytes_per_member", "two_writers_ratio",
                "flush_seconds_1000_clubs"):
        assert key in out
    assert out["cache_bytes_per_member"] > 0 and out["two_writers_ratio"] > 0
    assert out["mtproto_fast_path_speedup"] > 0
