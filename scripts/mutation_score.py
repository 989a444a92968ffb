"""Read mutmut's results (mutants/**/*.meta) and print killed / total for scripts/mutate.

A mutant counts as killed when a test failed (or timed out, or the type check caught it); as
survived when every test reaching it passed, or when no test reaches it (it would ship
unnoticed). Mutants named in mutation/equivalent.txt are equivalent (no test can tell them from
the original): they are left out of the total, each listed there with a one-line reason. Mutants not run yet are reported apart, not counted as
killed."""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # failed, pytest error, timeout, caught by type check
SURVIVED = {0, 33}  # every test reaching it passed, or no test reaches it at all
TARGET = 85.0


def equivalents(path: Path) -> Dict[str, str]:
    """mutant name -> reason, from `name  reason` lines (# comments and blank lines skipped)."""
    out: Dict[str, str] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"error: {path}:{n}: {name} has no reason (every equivalent mutant says why)")
        out[name] = reason.strip()
    return out


def results(root: Path) -> Dict[str, Optional[int]]:
    out: Dict[str, Optional[int]] = {}
    for meta in sorted(root.glob("**/*.meta")):
        out.update(json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key") or {})
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/mutate")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seconds", type=int, default=None)
    ap.add_argument("globs", nargs="*")
    a = ap.parse_args(argv)
    eq = equivalents(Path("mutation/equivalent.txt"))
    codes = results(Path("mutants"))
    if a.globs:
        codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, g) for g in a.globs)}
    killed = sorted(k for k, v in codes.items() if v in KILLED and k not in eq)
    survived = sorted(k for k, v in codes.items() if v in SURVIVED and k not in eq)
    unchecked = sorted(k for k, v in codes.items() if v not in KILLED | SURVIVED and k not in eq)
    equivalent = sorted(k for k in codes if k in eq)
    total = len(killed) + len(survived)
    score = round(100.0 * len(killed) / total, 1) if total else 0.0
    report = {"killed": len(killed), "total": total, "score_percent": score, "target_percent": TARGET,
              "survived": survived, "equivalent": len(equivalent), "not_checked": len(unchecked),
              "mutants": len(codes), "seconds": a.seconds}
    if a.json:
        print(json.dumps(report))
    else:
        for name in survived:
            print(f"survived: {name}")
        print(f"killed {len(killed)} / total {total} ({score} %; target {TARGET:g} %); "
              f"{len(equivalent)} equivalent left out, {len(unchecked)} not checked"
              + (f"; {a.seconds} s" if a.seconds is not None else ""))
    return 0 if total and score >= TARGET and not unchecked else 1


if __name__ == "__main__":
    sys.exit(main())
