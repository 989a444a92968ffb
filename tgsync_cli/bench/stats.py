"""Several runs of one benchmark folded into one report: medians, with min/median/max beside.

Figures on this shared machine move with the load other processes put on it, so one run proves
little. Every figure is reported as the median of the runs, and `spread` keeps (min, median,
max) of each figure that moved, ratios included: a ratio is computed inside each run, from
sides that ran interleaved, and only then folded.
"""

from __future__ import annotations

import os
import statistics
from typing import Any, Dict, List, Sequence


def machine_load() -> List[float]:
    """1, 5 and 15 minute load averages (the machine has os.cpu_count() cores to share)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - platforms without it
        return []


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def spread(values: Sequence[float]) -> List[float]:
    vs = sorted(values)
    return [vs[0], statistics.median(vs), vs[-1]]


def aggregate(outs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The last run's dict with every number replaced by the median over the runs, and
    `spread[key] = [min, median, max]` for the numbers that were not the same in every run."""
    out = dict(outs[-1])
    sp: Dict[str, List[float]] = {}
    for key, value in outs[-1].items():
        if key.startswith("_") or not _number(value):
            continue
        vals = [o[key] for o in outs if _number(o.get(key))]
        if len(vals) != len(outs):
            continue
        s = spread(vals)
        med = s[1]
        out[key] = round(med, 4) if isinstance(med, float) else med
        if s[0] != s[2]:
            sp[key] = [round(x, 4) if isinstance(x, float) else x for x in s]
    out["spread"] = sp
    return out


def fmt(out: Dict[str, Any], key: str, digits: int = 2) -> str:
    """`median (min–max)` for a figure that moved between runs, else the figure."""
    v = out.get(key)
    s = out.get("spread", {}).get(key)
    if v is None:
        return "-"
    if not s:
        return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"
    return f"{s[1]:,.{digits}f} ({s[0]:,.{digits}f}–{s[2]:,.{digits}f})"
