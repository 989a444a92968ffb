"""`stats --png`: the same weekly figures drawn with matplotlib (optional extra `tgsync[plot]`).

People are counted in whole numbers, weeks are named by the Monday they start on, joins go up
and departures down (left and kicked apart), net change and active writers are lines over them,
and the legend sits under the chart where it covers nothing. A club's name is drawn only with
the characters the chart's font has (an emoji would be a blank box and a warning)."""

from __future__ import annotations

from typing import Any, Dict, List

from tgsync_cli.cli.render import safe_text
from tgsync_cli.core.errors import ConfigError

WIDTH_PX, HEIGHT_PX, DPI = 1200, 600, 100
COLORS = {"joined": "#2e7d32", "left": "#ef6c00", "kicked": "#c62828", "net": "#212121",
          "writers": "#1565c0"}


def stats_png(view: Dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display; never opens a window
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ConfigError("--png needs matplotlib: pip install 'tgsync[plot]'") from None
    rows = view["weeks"]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    try:
        joined = [r["joined"] for r in rows]
        left = [-r["left"] for r in rows]
        kicked = [-r["kicked"] for r in rows]
        ax.bar(x, joined, width=0.6, label="joined", color=COLORS["joined"])
        ax.bar(x, left, width=0.6, label="left", color=COLORS["left"])
        ax.bar(x, kicked, width=0.6, bottom=left, label="kicked", color=COLORS["kicked"])
        ax.plot(x, [r["net"] for r in rows], marker="D", markersize=5, linewidth=1.5,
                label="net change", color=COLORS["net"])
        ax.plot(x, [r["active_writers"] for r in rows], marker="o", linewidth=1.5, linestyle="--",
                label="active writers", color=COLORS["writers"])
        ax.axhline(0, color="#555", linewidth=0.8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("people (departures below zero)")
        ax.set_xlabel("week starting (Monday, UTC)")
        ax.set_xticks(x, [r.get("week_start") or r["week"] for r in rows], rotation=45, ha="right",
                      fontsize=8)
        ax.grid(axis="y", color="#ddd", linewidth=0.6)
        ax.set_axisbelow(True)
        name = drawable(safe_text(view.get("name") or view["telegram_group_id"], limit=80))
        ax.set_title(f"{name} ({view['telegram_group_id']}): joins, departures and writers per week")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=5, frameon=False)
        fig.tight_layout()
        try:
            fig.savefig(path, format="png", dpi=DPI)
        except OSError as exc:
            raise ConfigError(f"--png {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def drawable(text: str) -> str:
    """TEXT without the characters the default font cannot draw (emoji and the like)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    kept: List[str] = [c for c in text if c.isspace() or font.get_char_index(ord(c)) != 0]
    return " ".join("".join(kept).split()) or "?"
