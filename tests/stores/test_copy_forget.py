"""forget wins over every writer: a person erased while `store copy` or `replay` runs does not
come back, whichever store the forget ran on; a real forget during a real copy waits its turn."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from tgsync_cli import ops
from tgsync_cli.cli import app
from tgsync_cli.stores import open_store
from tgsync_cli.stores import copy as copy_module
from tgsync_cli.stores.copy import copy_store
from tests import botapi_updates as U
from tests.ops.test_forget import traces
from tests.stores.backends import close_backend, join, message, open_backend, reopen

T = datetime(2025, 5, 1, 8)
DANA, ADMIN = 7, 9
PEOPLE = 20000


def club_of(store, people=40):
    """A club where Dana (7) joined by the admin's (9) link, many wrote, the admin kicked 8."""
    cid = store.create_club(-1001, "Sunday Long Run", None, {"bot_present": True})[0]["_id"]
    store.observe(cid, join(ADMIN, T, role="organizer", source="admin_import"))
    store.observe(cid, join(DANA, T + timedelta(minutes=1), invite_link="spring", invited_by=ADMIN))
    for uid in range(10, 10 + people):
        store.observe(cid, message(uid, T + timedelta(minutes=uid)))
    return store


def test_a_person_forgotten_in_the_source_between_chunks_is_not_copied_or_is_erased_again(tmp_path, monkeypatch):
    monkeypatch.setattr(copy_module, "CHUNK", 5)  # many chunks
    src = club_of(open_store(f"file:{tmp_path}/src"))
    dst = open_store(f"file:{tmp_path}/dst")
    chunks = []

    def progress(done, total):
        chunks.append(done)
        if len(chunks) == 3:  # users copied already, clubs and log not yet
            ops.forget(src, None, DANA)
            ops.forget(src, None, ADMIN)
    rep = copy_store(src, dst, progress)
    assert rep.forgotten == 2
    assert traces(dst, {DANA}) == [] and traces(dst, {ADMIN}) == []
    members = {m["telegram_id"] for m in dst.club_by_group(-1001)["members"]}
    assert members == set(range(10, 50))  # nobody else lost, no membership pointing nowhere
    assert {e["telegram_id"] for e in dst.export()["membership_log"]} == set(range(10, 50))


def test_a_forget_run_on_the_target_during_the_copy_is_not_undone(tmp_path, monkeypatch):
    monkeypatch.setattr(copy_module, "CHUNK", 5)
    src = club_of(open_store(f"file:{tmp_path}/src"))
    dst = open_store(f"file:{tmp_path}/dst")
    seen = []

    def progress(done, total):
        seen.append(done)
        if len(seen) == 2:
            ops.forget(dst, None, DANA)  # an operator erases Dana where the copy is going
    copy_store(src, dst, progress)
    assert traces(dst, {DANA}) == []


def test_a_real_forget_during_a_real_copy_waits_for_its_turn_and_wins(tmp_path):
    src = club_of(open_store(f"file:{tmp_path}/src"), people=PEOPLE)
    src.close()
    copy = subprocess.Popen([sys.executable, "-m", "tgsync_cli", "store", "copy", "--from",
                             f"file:{tmp_path}/src", "--to", f"file:{tmp_path}/dst", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (tmp_path / "dst").exists():  # the copy has begun writing
        time.sleep(0.01)
    forgets = [subprocess.run([sys.executable, "-m", "tgsync_cli", "forget", str(who), "--yes", "--store",
                               f"file:{tmp_path}/{where}"], capture_output=True, text=True, timeout=120)
               for who, where in ((DANA, "src"), (ADMIN, "dst"))]
    forgets_done = time.monotonic()
    out, err = copy.communicate(timeout=300)
    copy_ended = time.monotonic()
    assert copy.returncode == 0, err
    for f in forgets:
        assert f.returncode == 0, f.stderr  # never "database is locked"
    dst = open_store(f"file:{tmp_path}/dst")
    # erased on the target: gone whether it ran before, during or after the copy's last look
    assert traces(dst, {ADMIN}) == [], out
    ids = {m["telegram_id"] for m in dst.club_by_group(-1001)["members"]}
    assert set(range(10, 10 + PEOPLE)) <= ids and ADMIN not in ids  # nobody else lost
    if forgets_done < copy_ended - 0.5:  # erased on the source while the copy still ran
        assert traces(dst, {DANA}) == [], out


def test_replay_hears_a_forget_run_while_it_applies_the_file(tmp_path, monkeypatch):
    from tgsync_cli.app import offline
    from tgsync_cli.runtime import forget_filter

    monkeypatch.setattr(forget_filter, "POLL_EVENTS", 10)
    t0 = 1_735_000_000
    lines = [U.bot_added(t0)] + [U.message(t0 + i, 100 + i % 30) for i in range(1, 300)]
    f = tmp_path / "updates.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    store = open_store(f"file:{tmp_path}/store")
    real = offline._handle
    count = []

    def forget_105():
        other = open_store(f"file:{tmp_path}/store")
        ops.forget(other, None, 105)
        other.close()
    # an operator runs forget 105 from another shell: it waits for the replay's open batch
    operator = threading.Thread(target=forget_105)

    def handle(engine, event):
        count.append(1)
        if len(count) == 100:
            operator.start()
        return real(engine, event)
    monkeypatch.setattr(offline, "_handle", handle)
    offline.replay(f, store)
    operator.join(30)
    assert traces(store, {105}) == []
    assert len(store.club_by_group(U.CHAT["id"])["members"]) == 29  # everyone else who wrote


@pytest.mark.parametrize("backend", ["sqlite-file", "mongomock"])
def test_a_forget_landing_after_replays_last_look_but_before_its_flush_leaves_nothing(backend, tmp_path,
                                                                                     monkeypatch):
    """Given a replay whose file ends with messages of 105 still buffered, when an operator's
    forget 105 lands just after the replay last looked for forgets and before the buffer reaches
    the store, the flush brings nothing of 105 back (no activity row, no membership)."""
    from tgsync_cli.app import offline

    t0 = 1_735_000_000
    lines = [U.bot_added(t0)] + [U.message(t0 + i, 100 + i % 30) for i in range(1, 120)]
    f = tmp_path / "updates.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    store, uri = open_backend(backend, tmp_path)
    other = reopen(uri) if uri else store  # the operator's own connection where there is one
    real_make = offline.make_engine
    landed = []

    def make_engine(*args, **kwargs):
        engine = real_make(*args, **kwargs)
        real_flush = engine.flush

        def flush():
            if not landed:
                ops.forget(other, None, 105)
                landed.append(1)
            return real_flush()
        engine.flush = flush
        return engine
    monkeypatch.setattr(offline, "make_engine", make_engine)
    try:
        offline.replay(f, store)
        assert landed
        assert traces(store, {105}) == []
        assert len(store.club_by_group(U.CHAT["id"])["members"]) == 29  # everyone else who wrote
    finally:
        if other is not store:
            other.close()
        close_backend(store)


def test_replay_cli_still_applies_a_file_when_nobody_is_forgotten(tmp_path):
    t0 = 1_735_000_000
    f = tmp_path / "u.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in [U.bot_added(t0), U.message(t0 + 1, 5)]) + "\n")
    r = CliRunner().invoke(app, ["replay", str(f), "--store", f"file:{tmp_path}/s"])
    assert r.exit_code == 0, r.output
