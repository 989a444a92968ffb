"""`stats --png` draws the weekly figures into a real PNG an organizer can share."""

import struct

import pytest

from tgsync_cli.cli.plot import HEIGHT_PX, WIDTH_PX, stats_png
from tgsync_cli.core.errors import ConfigError


def view(name="Run [/] Club"):
    weeks = [{"week": f"2024-W{n}", "joined": n % 3, "left": n % 2, "kicked": 0, "net": n % 3 - n % 2,
              "active_writers": n, "drift": None, "joins_by_link": {}, "joins_by_inviter": {}}
             for n in range(40, 52)]
    return {"club_id": "club_x", "telegram_group_id": -1001, "name": name, "weeks": weeks}


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_chart_is_a_png_of_the_promised_size(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "stats.png"
    stats_png(view(), str(out))
    assert png_size(out) == (WIDTH_PX, HEIGHT_PX)


def test_an_unwritable_path_is_one_line_naming_it(tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "missing-dir" / "stats.png"
    with pytest.raises(ConfigError, match="missing-dir"):
        stats_png(view(), str(target))
