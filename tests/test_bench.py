"""The benchmark on a tiny workload: its JSON has every promised figure, our side ends with the
right roster, and it makes fewer round trips than the seed (behaviour, not timing)."""

import json

from tgsync_cli import bench

KEYS = {"db_ops", "db_ops_seed", "db_ops_seed_nocache", "db_ops_ratio_vs_seed", "throughput_events_per_s",
        "throughput_ratio_vs_seed", "p50_us", "p99_us", "bytes_per_cached_member", "db_ops_lower_bound"}


def test_tiny_benchmark_reports_every_figure_and_beats_the_seed_on_round_trips(capsys):
    code = bench.main(["--json", "--days", "2", "--clubs", "2", "--members", "40",
                       "--messages-per-day", "400"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert KEYS <= set(out)
    assert out["roster_check"] == "ok"
    assert out["db_ops_lower_bound"] <= out["db_ops"] < out["db_ops_seed"] < out["db_ops_seed_nocache"]
    assert out["bytes_per_cached_member"] > 0


def test_same_seed_same_workload():
    a, b = bench.generate(2, 20, 2, 100), bench.generate(2, 20, 2, 100)
    assert [(t, repr(e)) for t, e in a.events] == [(t, repr(e)) for t, e in b.events]
    assert sum(1 for _, e in a.events if e == bench.RESTART) == 1
