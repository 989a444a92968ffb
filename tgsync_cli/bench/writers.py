"""`--scale`: several writer processes on one SQLite `file:` store.

Two `replay` runs on one store (two admins importing at once, or replay beside serve) should go
faster together than one alone: each spends most of an update outside the store (reading the JSON
line, the engine's rules) and holds the write lock only for its short transaction. So the bench
times, in real processes, one `replay` of a file of N updates, then two `replay`s at once of two
such files, on fresh copies of one store, and reports events a second of both against one. The
processes import everything first and start together (a barrier), so start-up is not timed.
Rounds alternate one/two so the machine's load hits both alike; the ratio is taken per round.

What the machine itself allows is measured beside it, in the same rounds: one, then two processes
doing nothing but a fixed amount of arithmetic (the same barrier and timing). On an idle
two-core machine that ratio is ~2; on one shared with other busy processes it is whatever share
the scheduler gives a second process, and no store can make two writers beat it. So a
`two_writers_ratio` reads against `machine_two_process_ratio` of the same run, and
`two_writers_vs_machine` is the one over the other, per round (1.0: the writers lose nothing to
each other; 0.5: one waits while the other works).

The updates are writes: each person joins a club (a `chat_member` update, one write), says
something (hot path, no write) and leaves (one write); the two files name different people in
the same clubs, so both processes contend for the one write lock all the time.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from typing import Dict, List

from tgsync_cli.bench.stats import spread

CLUBS = 20
T0 = 1_741_000_000


def _chat(c: int) -> dict:
    return {"id": -1003_000_000_000 - c, "type": "supergroup", "title": f"Club {c}"}


def _user(uid: int) -> dict:
    return {"id": uid, "is_bot": False, "first_name": f"R{uid}"}


def updates(writer: int, people: int) -> List[str]:
    """Bot API JSON lines: every person joins, writes once, leaves."""
    out, n = [], 0
    for i in range(people):
        uid = 5_000_000 + writer * 1_000_000 + i
        chat, user, at = _chat(i % CLUBS), _user(uid), T0 + i * 3
        for old, new in (("left", "member"), (None, None), ("member", "left")):
            n += 1
            if old is None:
                out.append(json.dumps({"update_id": n, "message": {
                    "message_id": n, "date": at + 1, "chat": chat, "from": user, "text": "km"}}))
                continue
            out.append(json.dumps({"update_id": n, "chat_member": {
                "chat": chat, "from": user, "date": at + (2 if new == "left" else 0),
                "old_chat_member": {"user": user, "status": old},
                "new_chat_member": {"user": user, "status": new}}}))
    return out


def seed_store(uri: str) -> None:
    from tgsync_cli.stores import new_id, open_store

    store = open_store(uri)
    clubs = [{"_id": new_id("club"), "name": f"Club {c}", "telegram_group_id": _chat(c)["id"],
              "members": [], "sync": {"bot_is_admin": True, "bot_present": True}} for c in range(CLUBS)]
    store.import_documents({"clubs": clubs, "users": []})
    conn = getattr(store, "_conn", None)
    if conn is not None:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def _writer(uri: str, path: str, barrier, results) -> None:
    from tgsync_cli.app.offline import replay
    from tgsync_cli.stores import open_store

    store = open_store(uri)
    barrier.wait()
    t = time.perf_counter()
    report = replay(path, store)
    results.put((report.events, t, time.perf_counter()))
    store.close()


SPIN = 3_000_000  # additions: about as long as one writer's replay at the default size


def _spin(n: int, barrier, results) -> None:
    barrier.wait()
    t = time.perf_counter()
    x = 0
    for _ in range(n):
        x += 1
    results.put((x, t, time.perf_counter()))


def _machine(procs: int, n: int) -> float:
    """Additions a second of `procs` processes started together (the machine's own ceiling)."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    ps = [ctx.Process(target=_spin, args=(n, barrier, results)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = [results.get(timeout=600) for _ in ps]
    for p in ps:
        p.join()
    return sum(g[0] for g in got) / (max(g[2] for g in got) - min(g[1] for g in got))


class WritersLostSomething(AssertionError):
    """Writers that went fast by dropping writes would be worthless: the bench refuses them."""


def _check(uri: str, people: int) -> None:
    """Every person every process replayed has a membership, and it says they left."""
    from tgsync_cli.stores import open_store

    store = open_store(uri, create=False)
    try:
        rows = store._conn.execute(
            "SELECT status, COUNT(*) FROM memberships GROUP BY status").fetchall()
    finally:
        store.close()
    if dict(rows) != {"left": people}:
        raise WritersLostSomething(f"expected {people} memberships, all left; found {dict(rows)}")


def _round(root: str, files: List[str], tag: str) -> float:
    """Events a second of `len(files)` replay processes started together on one fresh store."""
    d = os.path.join(root, tag)
    shutil.copytree(os.path.join(root, "base"), d)
    uri = f"file:{d}"
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(len(files)), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(uri, f, barrier, results)) for f in files]
    for p in procs:
        p.start()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    _check(uri, sum(g[0] for g in got) // 3)  # three updates a person
    shutil.rmtree(d, ignore_errors=True)
    events = sum(g[0] for g in got)
    return events / (max(g[2] for g in got) - min(g[1] for g in got))


def run(people: int = 1500, rounds: int = 3) -> Dict[str, object]:
    root = tempfile.mkdtemp(prefix="tgsync-writers-")
    try:
        seed_store(f"file:{os.path.join(root, 'base')}")
        files = []
        for w in range(2):
            path = os.path.join(root, f"updates{w}.jsonl")
            with open(path, "w") as fh:
                fh.write("\n".join(updates(w, people)) + "\n")
            files.append(path)
        one, two, ratios, machine, versus = [], [], [], [], []
        spin = max(SPIN * people // 1500, 100_000)
        for r in range(rounds):  # one, two, machine 2, machine 1 | machine 1, machine 2, two, one
            if r % 2 == 0:
                a = _round(root, files[:1], f"one{r}")
                b = _round(root, files, f"two{r}")
                m2 = _machine(2, spin)
                m1 = _machine(1, spin)
            else:
                m1 = _machine(1, spin)
                m2 = _machine(2, spin)
                b = _round(root, files, f"two{r}")
                a = _round(root, files[:1], f"one{r}")
            one.append(a)
            two.append(b)
            ratios.append(b / a)
            machine.append(m2 / m1)
            versus.append(b / a / (m2 / m1))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"writers_events_per_process": people * 3, "writers_rounds": rounds,
            "one_writer_events_per_s": [round(x) for x in spread(one)],
            "two_writers_events_per_s": [round(x) for x in spread(two)],
            "two_writers_ratio_runs": [round(x, 2) for x in spread(ratios)],
            "two_writers_ratio": round(spread(ratios)[1], 2),
            "machine_two_process_ratio_runs": [round(x, 2) for x in spread(machine)],
            "machine_two_process_ratio": round(spread(machine)[1], 2),
            "two_writers_vs_machine": round(spread(versus)[1], 2)}


if __name__ == "__main__":  # pragma: no cover - a manual run
    print(json.dumps(run()))
