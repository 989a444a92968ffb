"""A prefork worker's /metrics adds up its children's files; a child may be creating its file at
the moment of a scrape, and the scrape still answers with every figure counted so far."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tgsync_cli.runtime.worker_metrics import tolerant_multiprocess_collector


def child_counted(directory, pid: int, applied: float) -> None:
    """What a child's counter leaves in its file: tgsync_events_total{outcome="applied"}."""
    d = MmapedDict(str(directory / f"counter_{pid}.db"))
    d.write_value(mmap_key("tgsync_events", "tgsync_events_total", ["outcome"], ["applied"], "Events"),
                  applied, 0.0)
    d.close()


def test_a_scrape_while_a_child_is_creating_its_file_still_reports_what_the_others_counted(tmp_path):
    child_counted(tmp_path, 101, 7)
    child_counted(tmp_path, 102, 5)
    (tmp_path / "counter_103.db").write_bytes(b"")  # a third child: its file just opened, still empty
    (tmp_path / "counter_104.db").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00\x30\x00")  # half written
    registry = CollectorRegistry()
    tolerant_multiprocess_collector(registry, str(tmp_path))
    text = generate_latest(registry).decode()
    assert 'tgsync_events_total{outcome="applied"} 12.0' in text
