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


def test_the_chart_names_weeks_by_date_and_draws_an_emoji_title_without_warnings(tmp_path, recwarn):
    pytest.importorskip("matplotlib")
    import logging

    from tgsync_cli.cli.plot import drawable

    caught = []
    handler = logging.Handler()
    handler.emit = caught.append
    logging.getLogger("matplotlib").addHandler(handler)
    try:
        v = view(name="Run 🏃 Club \U0001f600")
        for w in v["weeks"]:
            w["week_start"] = "2024-12-02"
        stats_png(v, str(tmp_path / "s.png"))
    finally:
        logging.getLogger("matplotlib").removeHandler(handler)
    assert not [w for w in recwarn if "Glyph" in str(w.message)]
    assert not [r for r in caught if "Glyph" in r.getMessage()]
    assert drawable("Run 🏃 Club") == "Run Club"


def test_the_people_axis_counts_in_whole_numbers(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    seen = {}
    real_close = plt.close

    def keep(fig):
        ax = fig.axes[0]
        seen["yticks"] = list(ax.get_yticks())
        seen["xlabels"] = [t.get_text() for t in ax.get_xticklabels()]
        seen["ylabel"], seen["legend"] = ax.get_ylabel(), [t.get_text() for t in ax.get_legend().get_texts()]
        real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    v = view()
    for w in v["weeks"]:
        w["week_start"] = "2024-12-02"
        w["joined"], w["left"], w["kicked"], w["active_writers"] = 1, 1, 1, 2
        w["net"] = -1
    stats_png(v, str(tmp_path / "s.png"))
    assert all(float(t).is_integer() for t in seen["yticks"])
    assert seen["xlabels"][0] == "2024-12-02" and seen["ylabel"].startswith("people")
    assert sorted(seen["legend"]) == ["active writers", "joined", "kicked", "left", "net change"]
