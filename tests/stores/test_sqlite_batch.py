"""A bulk writer's batch on the SQLite store: several calls in one write transaction, each call
still whole or absent, nothing seen by another process until the batch commits, and a replay
killed midway that is run again ends where one clean run ends."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import datetime

import pytest

from tgsync_cli.core.errors import StoreConflict
from tgsync_cli.core.events import Person
from tgsync_cli.core.evidence import Observation
from tgsync_cli.stores import open_store
from tgsync_cli.stores.common import DEFAULT_DB
from tgsync_cli.stores.sqlite_schema import DB_FILE

T = datetime(2025, 3, 3, 8)


def club(store):
    store.import_documents({"clubs": [{"_id": "c1", "name": "SRG", "telegram_group_id": -100, "members": []}],
                            "users": []})


def joined(uid):
    return Observation(Person(uid, first_name=f"R{uid}"), "active", "member", T, "join_event")


def active_ids(uri):
    with open_store(uri, create=False) as s:
        return sorted(m["telegram_id"] for m in s.club_by_id("c1")["members"] if m["status"] == "active")


def test_a_batch_is_seen_by_other_processes_only_once_it_commits(tmp_path):
    uri = f"file:{tmp_path}/s"
    store = open_store(uri)
    club(store)
    with store.batch():
        store.observe("c1", joined(1))
        store.observe("c1", joined(2))
        assert store.member("c1", 2)["status"] == "active"  # the batch reads its own writes
        assert active_ids(uri) == []  # another connection: nothing yet
    assert active_ids(uri) == [1, 2]
    store.close()


def test_a_call_that_fails_inside_a_batch_leaves_nothing_of_itself_and_the_others_are_kept(tmp_path):
    uri = f"file:{tmp_path}/s"
    store = open_store(uri)
    club(store)
    with store.batch():
        store.observe("c1", joined(1))
        with pytest.raises(StoreConflict), store._tx("half a write") as cur:
            cur.execute("UPDATE memberships SET status = 'left' WHERE telegram_id = 1")
            cur.execute("INSERT INTO clubs (id, telegram_group_id, name) VALUES ('c1', -5, 'dup')")
        store.observe("c1", joined(3))
    assert active_ids(uri) == [1, 3]  # the failed call's update of 1 is gone with it
    store.close()


def test_calls_that_returned_before_the_block_raised_are_committed(tmp_path):
    uri = f"file:{tmp_path}/s"
    store = open_store(uri)
    club(store)
    with pytest.raises(KeyboardInterrupt), store.batch():
        store.observe("c1", joined(1))
        raise KeyboardInterrupt
    assert active_ids(uri) == [1]
    store.observe("c1", joined(2))  # the store is usable afterwards, one transaction a call
    assert active_ids(uri) == [1, 2]
    store.close()


def test_a_replay_killed_midway_and_run_again_ends_as_one_clean_run(tmp_path):
    from tgsync_cli.sim.faults import soak_updates

    f = tmp_path / "updates.jsonl"
    f.write_text("\n".join(json.dumps(u) for u in soak_updates(6000, seed=5, clubs=8, people=80)))
    cmd = [sys.executable, "-m", "tgsync_cli", "replay", str(f), "--store"]
    clean = f"file:{tmp_path}/clean"
    subprocess.run(cmd + [clean], check=True, capture_output=True, cwd=tmp_path)
    killed = f"file:{tmp_path}/killed"
    proc = subprocess.Popen(cmd + [killed], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "killed" / DB_FILE.format(database=DEFAULT_DB)
    for _ in range(600):  # kill it once some batches are in, mid-file
        time.sleep(0.01)
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
                if c.execute("SELECT COUNT(*) FROM membership_log").fetchone()[0] > 50:
                    break
        except sqlite3.Error:
            continue
    proc.kill()
    assert proc.wait(10) == -9  # killed, not finished
    subprocess.run(cmd + [killed], check=True, capture_output=True, cwd=tmp_path)

    def roster(uri):
        with open_store(uri, create=False) as s:
            return {c["telegram_group_id"]: sorted((m["telegram_id"], m["role"], m["status"], m["source"],
                                                    m["joined_at"]) for m in c["members"])
                    for c in s.all_clubs()}
    want = roster(clean)
    assert sum(len(v) for v in want.values()) > 100
    assert roster(killed) == want


def left(uid, at):
    return Observation(Person(uid, first_name=f"R{uid}"), "left", "member", at, "chat_member_event")


def test_a_member_another_process_moved_while_the_batch_decided_is_decided_again_under_the_lock(tmp_path):
    """A batch decides before it takes the write lock: when another writer changes what a
    decision rested on meanwhile, the store ends as if the batch had held the lock throughout."""
    uri = f"file:{tmp_path}/s"
    store = open_store(uri)
    club(store)
    other = open_store(uri)  # a second writer: its own connection to the same file
    with store.batch():
        store.observe("c1", joined(1))  # decided on "no membership, no departure"
        store.observe("c1", joined(2))
        other.observe("c1", left(1, T.replace(hour=9)))  # a later leave lands first
    other.close()
    assert active_ids(uri) == [2]  # the later leave still holds: 1 joined, then left
    with open_store(uri, create=False) as s:
        member = {m["telegram_id"]: m for m in s.club_by_id("c1")["members"]}[1]
        assert (member["status"], member["status_at"]) == ("left", T.replace(hour=9))
    assert store._txs._plan.redone == 1  # the whole plan, decided again
    store.close()


def test_a_batch_holds_no_write_lock_while_it_only_decides(tmp_path):
    uri = f"file:{tmp_path}/s"
    store = open_store(uri)
    club(store)
    other = open_store(uri)
    with other.batch():
        other.observe("c1", joined(1))  # planned, not written: the lock is still free
        store.observe("c1", joined(2))  # so this writer is not kept waiting
        assert active_ids(uri) == [2]
    assert active_ids(uri) == [1, 2]
    other.close()
    store.close()


def test_a_replay_in_batches_ends_exactly_as_one_transaction_a_call(tmp_path):
    """The plan's writes (decided before the lock, log entries and version bumps grouped) are
    the writes a call on its own makes: every table ends the same."""
    from tgsync_cli.app.offline import replay
    from tgsync_cli.sim.faults import soak_updates

    f = tmp_path / "updates.jsonl"
    f.write_text("\n".join(json.dumps(u) for u in soak_updates(4000, seed=9, clubs=6, people=60)))

    def run(name, batches):
        store = open_store(f"file:{tmp_path}/{name}")
        if not batches:
            store.batch = None  # replay then makes one transaction a call
        replay(f, store)
        conn = store._conn
        tables = {
            "memberships": conn.execute("SELECT c.telegram_group_id, m.telegram_id, m.role, m.status,"
                                        " m.joined_at, m.last_seen, m.source, m.status_at, m.role_at, m.hard_at,"
                                        " m.proof_at, m.prior_at, m.confirmed_at, u.telegram_id FROM memberships m"
                                        " JOIN clubs c ON c.id = m.club_id LEFT JOIN users u ON u.id = m.user_id"
                                        " ORDER BY 1, 2").fetchall(),
            "departures": conn.execute("SELECT c.telegram_group_id, d.telegram_id, d.status, d.at FROM departures d"
                                       " JOIN clubs c ON c.id = d.club_id ORDER BY 1, 2").fetchall(),
            "log": conn.execute("SELECT c.telegram_group_id, l.telegram_id, l.at, l.from_status, l.from_role,"
                                " l.to_status, l.to_role, l.source, l.actor FROM membership_log l"
                                " JOIN clubs c ON c.id = l.club_id ORDER BY l.seq").fetchall(),
            "versions": conn.execute("SELECT telegram_group_id, version FROM clubs ORDER BY 1").fetchall(),
        }
        store.close()
        return tables

    batched, alone = run("batched", True), run("alone", False)
    assert len(batched["memberships"]) > 100 and len(batched["log"]) > 200
    assert batched == alone


def test_a_batch_asking_for_a_busy_lock_is_told_at_once_and_keeps_its_plan(tmp_path):
    uri = f"file:{tmp_path}/s"
    store = open_store(uri)
    club(store)
    holder = sqlite3.connect(tmp_path / "s" / DB_FILE.format(database=DEFAULT_DB), isolation_level=None)
    with store.batch():
        store.observe("c1", joined(1))
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        started = time.monotonic()
        assert store.try_write_lock() is False
        assert time.monotonic() - started < 0.5  # no waiting for it
        store.observe("c1", joined(2))  # deciding goes on meanwhile
        holder.execute("COMMIT")
        assert store.try_write_lock() is True  # free: the plan is written, the lock held
        assert active_ids(uri) == []  # and committed with the batch, not before
    assert active_ids(uri) == [1, 2]
    holder.close()
    store.close()
