"""Several real processes on one store at once (serve, a cron reconcile, an admin's import): they
end exactly where one process applying the same events would, never duplicate a person, and a
forget run beside a writer is not undone."""

import multiprocessing
from datetime import datetime

import pytest

from tests.stores.backends import (
    PROCESS_BACKENDS,
    apply_in_process,
    close_backend,
    comparable,
    forget_in_process,
    history,
    join,
    message,
    open_backend,
)

CHAT = -1007000
SPAWN = multiprocessing.get_context("spawn")  # real, fresh interpreters, as separate commands are


def run_together(jobs):
    """Start every job in its own process, released together by a barrier; all must succeed."""
    barrier = SPAWN.Barrier(len(jobs))
    procs = [SPAWN.Process(target=fn, args=(*args, barrier)) for fn, args in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0] * len(procs)


@pytest.fixture(params=PROCESS_BACKENDS)
def kind(request):
    return request.param


def test_two_processes_writing_at_once_end_equal_to_one_after_the_other(kind, tmp_path):
    events = history(range(100, 260))
    sequential, _ = open_backend(kind, tmp_path, "sequential")
    cid = sequential.create_club(CHAT, "Intervals", None, {})[0]["_id"]
    for how, ob in events:
        sequential.observe(cid, ob) if how == "one" else sequential.observe_many(cid, [ob])

    shared, uri = open_backend(kind, tmp_path, "shared")
    cid2 = shared.create_club(CHAT, "Intervals", None, {})[0]["_id"]
    half = len(events) // 2
    run_together([(apply_in_process, (uri, cid2, events[:half])),
                  (apply_in_process, (uri, cid2, events[half:]))])
    try:
        assert comparable(shared) == comparable(sequential)
        assert len(comparable(shared)["clubs"][CHAT]) > 100
    finally:
        close_backend(sequential)
        close_backend(shared)


def test_a_race_of_first_sightings_of_one_user_makes_one_account_and_one_membership(kind, tmp_path):
    store, uri = open_backend(kind, tmp_path)
    cid = store.create_club(CHAT, "Intervals", None, {})[0]["_id"]
    first = [("one", message(777, datetime(2025, 5, 1, 9)))]
    run_together([(apply_in_process, (uri, cid, first)) for _ in range(4)])
    try:
        docs = store.export()
        assert [u["telegram_id"] for u in docs["users"]] == [777]
        assert [m["telegram_id"] for m in docs["clubs"][0]["members"]] == [777]
        assert len(store.membership_log(telegram_id=777)) == 1
    finally:
        close_backend(store)


def test_a_forget_beside_a_writer_leaves_no_membership_without_its_account(kind, tmp_path):
    store, uri = open_backend(kind, tmp_path)
    cid = store.create_club(CHAT, "Intervals", None, {})[0]["_id"]
    events = [("one", join(42 if i % 5 == 0 else 1000 + i, datetime(2025, 5, 1, 9, 0, i % 60)))
              for i in range(200)]
    run_together([(apply_in_process, (uri, cid, events)), (forget_in_process, (uri, 42, 40))])
    try:
        docs = store.export()
        accounts = {u["_id"] for u in docs["users"]}
        assert all(m["user_id"] in accounts for m in docs["clubs"][0]["members"])
        store.forget(42)  # and once the writer is done, the person is gone for good
        assert 42 not in {m["telegram_id"] for m in store.export()["clubs"][0]["members"]}
        assert store.user_by_telegram_id(42) is None
    finally:
        close_backend(store)


def test_two_replay_commands_into_one_file_store_end_as_if_run_one_after_the_other(tmp_path):
    """The issue's measurement: two `tgsync replay` runs of 1,500 updates each, at once."""
    import json
    import subprocess
    import sys

    from tgsync_cli.sim.faults import soak_updates
    from tgsync_cli.stores import open_store

    updates = soak_updates(3000, seed=21, clubs=6, people=80)
    files = []
    for i, part in enumerate((updates[:40] + updates[40:1520], updates[:40] + updates[1520:])):
        f = tmp_path / f"part{i}.jsonl"
        f.write_text("\n".join(json.dumps(u) for u in part))
        files.append(f)
    cmd = [sys.executable, "-m", "tgsync_cli", "replay"]
    seq = f"file:{tmp_path}/sequential"
    for f in files:
        subprocess.run(cmd + [str(f), "--store", seq], check=True, capture_output=True, cwd=tmp_path)
    both = f"file:{tmp_path}/together"
    procs = [subprocess.Popen(cmd + [str(f), "--store", both], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for f in files]
    assert [p.wait(300) for p in procs] == [0, 0], [p.stderr.read() for p in procs]

    def roster(uri):
        with open_store(uri, create=False) as s:
            return {c["telegram_group_id"]: sorted((m["telegram_id"], m["role"], m["status"], m["source"])
                                                  for m in c["members"]) for c in s.all_clubs()}
    want = roster(seq)
    assert sum(len(v) for v in want.values()) > 300
    assert roster(both) == want
