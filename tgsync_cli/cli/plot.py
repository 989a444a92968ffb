"""`stats --png`: the same weekly figures drawn with matplotlib (optional extra `tgsync[plot]`)."""

from __future__ import annotations

from typing import Any, Dict

from tgsync_cli.core.errors import ConfigError

WIDTH_PX, HEIGHT_PX, DPI = 1200, 600, 100


def stats_png(view: Dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display; never opens a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--png needs matplotlib: pip install 'tgsync[plot]'") from None
    rows = view["weeks"]
    weeks = [r["week"] for r in rows]
    fig, ax = plt.subplots(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    try:
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r["joined"] for r in rows], width=0.4, label="joined", color="#2e7d32")
        ax.bar([i + 0.2 for i in x], [-(r["left"] + r["kicked"]) for r in rows], width=0.4,
               label="left + kicked", color="#c62828")
        ax.plot(list(x), [r["active_writers"] for r in rows], marker="o", label="active writers", color="#1565c0")
        ax.axhline(0, color="#555", linewidth=0.8)
        ax.set_xticks(list(x), weeks, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{view.get('name') or view['telegram_group_id']} — per ISO week")
        ax.legend(loc="upper left")
        fig.tight_layout()
        try:
            fig.savefig(path, format="png", dpi=DPI)
        except OSError as exc:
            raise ConfigError(f"--png {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
