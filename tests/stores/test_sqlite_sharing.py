"""One SQLite `file:` store shared by processes: the write lock is waited for in sub-millisecond
steps (never SQLite's 1-100 ms sleeps), checkpoints run off the writers' connection, and the
flush writes a person's weekly activity row once a week."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta

import pytest

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import ChatRef, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.stores import open_store, sqlite_busy
from tgsync_cli.stores.sqlite_schema import DB_FILE
from tgsync_cli.stores.common import DEFAULT_DB


def db_path(tmp_path):
    return str(tmp_path / "s" / DB_FILE.format(database=DEFAULT_DB))


def test_a_writer_waits_for_the_lock_in_sub_millisecond_steps_and_then_writes(tmp_path, monkeypatch):
    store = open_store(f"file:{tmp_path}/s")
    other = sqlite3.connect(db_path(tmp_path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    threading.Timer(0.05, lambda: other.execute("COMMIT")).start()
    sleeps = []
    real_sleep = sqlite_busy.time.sleep
    monkeypatch.setattr(sqlite_busy.time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    cur = store._conn.cursor()
    attempts = sqlite_busy.begin(cur, write=True)
    cur.execute("COMMIT")
    assert attempts > 1 and sleeps and max(sleeps) < 0.001
    assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == sqlite_busy.BUSY_TIMEOUT_MS
    other.close()
    store.close()


def test_a_lock_held_past_the_timeout_is_reported_not_waited_for_forever(tmp_path):
    store = open_store(f"file:{tmp_path}/s")
    other = sqlite3.connect(db_path(tmp_path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sqlite_busy.begin(store._conn.cursor(), write=True, timeout=0.05)
    other.execute("ROLLBACK")
    other.close()
    store.close()


def test_checkpoints_run_on_their_own_connection_and_the_data_is_all_there_after_close(tmp_path):
    store = open_store(f"file:{tmp_path}/s")
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    ck = store._checkpointer
    ck.wal_bytes = 1  # checkpoint as soon as anything was written
    store.import_documents({"clubs": [{"_id": "c1", "name": "SRG", "telegram_group_id": -100, "members": [
        {"user_id": f"u{i}", "telegram_id": i, "role": "member", "status": "active"} for i in range(1, 500)]}],
        "users": [{"_id": f"u{i}", "telegram_id": i, "first_name": "R"} for i in range(1, 500)]})
    done = threading.Event()
    for _ in range(100):  # the thread polls every 0.25 s
        if ck.checkpoints:
            break
        done.wait(0.05)
    assert ck.checkpoints > 0
    store.close()
    again = open_store(f"file:{tmp_path}/s", create=False)
    assert again.active_count("c1") == 499
    again.close()


def test_a_member_writing_every_day_has_one_activity_row_a_week(tmp_path):
    store = open_store(f"file:{tmp_path}/s")
    store.import_documents({"clubs": [{"_id": "c1", "name": "SRG", "telegram_group_id": -100, "members": [
        {"user_id": "u1", "telegram_id": 1, "role": "member", "status": "active"}]}],
        "users": [{"_id": "u1", "telegram_id": 1, "first_name": "R"}]})
    engine = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    engine.start()
    monday = datetime(2025, 3, 3, 8)
    inserts = []
    store._conn.set_trace_callback(lambda sql: inserts.append(sql) if "INTO activity" in sql else None)
    for day in range(9):  # Monday to next Tuesday, a flush a day
        engine.handle(MessageSeen(ChatRef(-100, "supergroup"), Person(1), monday + timedelta(days=day)))
        engine.flush()
    store._conn.set_trace_callback(None)
    weeks = store._conn.execute("SELECT week FROM activity WHERE telegram_id = 1 ORDER BY week").fetchall()
    assert [w for (w,) in weeks] == ["2025-W10", "2025-W11"]
    assert len(inserts) == 2  # once a week, not once a flush
    store.close()


def test_a_message_from_someone_another_process_removed_still_brings_them_back(tmp_path):
    """The flush updates active members by key; one who left meanwhile (applied by another
    process while this one had them cached) is found and made active by the later message."""
    from tgsync_cli.core.events import MemberState, MemberStatusChanged

    uri = f"file:{tmp_path}/s"
    store = open_store(uri)
    store.import_documents({"clubs": [{"_id": "c1", "name": "SRG", "telegram_group_id": -100, "members": [
        {"user_id": f"u{i}", "telegram_id": i, "role": "member", "status": "active"} for i in (1, 2)]}],
        "users": [{"_id": f"u{i}", "telegram_id": i, "first_name": "R"} for i in (1, 2)]})
    serve = Engine(store, OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    serve.start()
    other = Engine(open_store(uri), OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    other.start()
    t = datetime(2025, 3, 3, 8)
    other.handle(MemberStatusChanged(ChatRef(-100, "supergroup"), Person(2), MemberState("left"), t))
    for uid in (1, 2):
        serve.handle(MessageSeen(ChatRef(-100, "supergroup"), Person(uid), t + timedelta(minutes=5)))
    serve.flush()
    doc = store.club_by_group(-100)
    status = {m["telegram_id"]: (m["status"], m["last_seen"]) for m in doc["members"]}
    assert status == {1: ("active", t + timedelta(minutes=5)), 2: ("active", t + timedelta(minutes=5))}
    other.store.close()
    store.close()
