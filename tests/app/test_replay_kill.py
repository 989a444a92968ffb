"""`replay` killed with SIGKILL and run again ends where one clean run ends, last_seen included:
a message that does not reactivate someone (they left after it) still says when they were last
seen, so the rerun finds what the killed run held in memory."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tgsync_cli.sim.faults import soak_updates
from tgsync_cli.stores import open_store


def roster(uri):
    store = open_store(uri, create=False)
    out = {}
    for club in store.export()["clubs"]:
        for m in club["members"]:
            out[(club["telegram_group_id"], m["telegram_id"])] = (
                m["status"], m["role"], m["source"], m["joined_at"], m["last_seen"])
    store.close()
    return out


def replay(path, uri, **kw):
    return subprocess.Popen([sys.executable, "-m", "tgsync_cli", "replay", str(path), "--store", uri],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def test_a_rerun_after_kill_9_ends_with_the_clean_runs_last_seen(tmp_path):
    updates = tmp_path / "updates.jsonl"
    updates.write_text("".join(json.dumps(u) + "\n" for u in soak_updates(8000, seed=6, people=200)))
    clean, killed = f"file:{tmp_path}/clean", f"file:{tmp_path}/killed"
    started = time.monotonic()
    assert replay(updates, clean).wait(300) == 0
    took = time.monotonic() - started
    proc = replay(updates, killed)
    deadline = time.monotonic() + 60
    while not (tmp_path / "killed" / "ayda_run.sqlite3").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(took * 0.6)  # partway through the file, with last_seen buffered in memory
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert replay(updates, killed).wait(300) == 0
    want, got = roster(clean), roster(killed)
    assert len(want) > 1000
    differ = {k: (want[k], got.get(k)) for k in want if got.get(k) != want[k]}
    assert not differ, f"{len(differ)} members differ, e.g. {list(differ.items())[:3]}"
