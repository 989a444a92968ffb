"""kill -9 of a serve-like process (bench/serve_child.py) under a busy store: nothing accepted lost.

A third process holds the store's SQLite write lock most of the time (0.4 s of every 0.5 s, as a
long import or a cron reconcile would), so the serve-like child's work queue is never empty.
The child is killed with SIGKILL at random moments, restarted each time from what its session
file says Telegram need not resend, and finally run to the end. An update lost is one whose
writer is missing from the club: Telegram was told (by the saved update state) not to resend
it, and it reached neither the store nor the spool.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

LOCKER = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
print("holding", flush=True)
while True:
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    time.sleep(float(sys.argv[3]))
"""


def _child(session: Path, uri: str, n: int, gate: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "tgsync_cli.bench.serve_child", str(session), uri, str(n)]
    return subprocess.Popen(args + ([] if gate else ["--no-gate"]), stdout=subprocess.PIPE, text=True)


def run_kill_soak(n: int = 600, kills: int = 3, seed: int = 1, gate: bool = True,
                  workdir: Optional[str] = None, hold: float = 0.4, free: float = 0.1) -> Dict[str, Any]:
    from tgsync_cli.bench.serve_child import CHAT_ID, FIRST_USER
    from tgsync_cli.stores import open_store

    rng = random.Random(seed)
    work = Path(workdir or tempfile.mkdtemp(prefix="tgsync-kill-"))
    uri, session = f"file:{work / 'store'}", work / "session"
    store = open_store(uri)
    store.create_club(CHAT_ID, "Sunday Long Run", None, {})
    store.close()
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(work / "store" / "ayda_run.sqlite3"),
                               str(hold), str(free)], stdout=subprocess.PIPE, text=True)
    assert locker.stdout is not None and locker.stdout.readline().strip() == "holding"
    started = time.monotonic()
    resumed = []
    try:
        for _ in range(kills):
            child = _child(session, uri, n, gate)
            assert child.stdout is not None
            line = child.stdout.readline()
            resumed.append(int(line.split()[1]) if line.startswith("from") else -1)
            time.sleep(rng.uniform(0.2, 1.5))
            child.send_signal(signal.SIGKILL)
            child.wait()
    finally:
        locker.kill()
        locker.wait()
    last = _child(session, uri, n, gate)
    out, _ = last.communicate(timeout=600)
    seconds = time.monotonic() - started
    conn = sqlite3.connect(work / "store" / "ayda_run.sqlite3")
    members = {tid for (tid,) in conn.execute("SELECT telegram_id FROM memberships")}
    conn.close()
    wanted = {FIRST_USER + pts for pts in range(1, n + 1)}
    return {"updates": n, "kills": kills, "resumed_after_pts": resumed, "gate": gate,
            "lost": len(wanted - members), "finished": "done" in out,
            "seconds": round(seconds, 1), "workdir": str(work)}
