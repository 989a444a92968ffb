"""Opening a store: read-only commands never create one, a damaged one is one line naming the URI
and the cause, and what is created is the owner's only."""

import os
import stat

import pytest

from tgsync_cli.core.errors import StoreError
from tgsync_cli.stores import open_store


def test_a_missing_store_opened_read_only_is_an_error_and_nothing_is_created(tmp_path):
    with pytest.raises(StoreError, match=f"no store at file:{tmp_path}/none"):
        open_store(f"file:{tmp_path}/none", create=False)
    assert not (tmp_path / "none").exists()
    with pytest.raises(StoreError, match="no store at memory:never-made"):
        open_store("memory:never-made", create=False)


def test_a_new_store_is_readable_by_its_owner_only(tmp_path, monkeypatch):
    os.umask(0o022)
    open_store(f"file:{tmp_path}/s").close()
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    for f in (tmp_path / "s").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f.name


@pytest.mark.parametrize("damage", ["garbage", "file-for-dir", "dir-for-db"])
def test_a_damaged_store_is_one_line_naming_the_uri_and_the_cause(tmp_path, damage):
    path = tmp_path / "s"
    if damage == "file-for-dir":
        path.write_text("not a directory")
    else:
        path.mkdir()
        db = path / "ayda_run.sqlite3"
        if damage == "garbage":
            db.write_bytes(b"this is not sqlite at all" * 100)
        else:
            db.mkdir()
    for create in (True, False):
        with pytest.raises(StoreError) as err:
            open_store(f"file:{path}", create=create)
        msg = str(err.value)
        assert f"file:{path}" in msg and "\n" not in msg and ("damaged" in msg), msg


def test_memory_stores_are_fresh_unless_named(tmp_path):
    a = open_store("memory:")
    a.create_club(-1, "A", None, {})
    assert open_store("memory:").club_by_group(-1) is None
    named = open_store("memory:shared-here")
    named.create_club(-2, "B", None, {})
    assert open_store("memory:shared-here", create=False).club_by_group(-2)["name"] == "B"


def schema_1_store(tmp_path):
    """A store as a tgsync before status confirmations wrote it: one club, member 5 active since
    2025-01-01, no prior_at/confirmed_at/seen_times columns, schema 1 in meta and in the file header."""
    import sqlite3
    from datetime import datetime

    from tgsync_cli.core.events import Person
    from tgsync_cli.core.evidence import Observation

    uri = f"file:{tmp_path}/old"
    store = open_store(uri)
    club = store.create_club(-100, "Old", None, {})[0]["_id"]
    store.observe(club, Observation(Person(5), "active", "member", datetime(2025, 1, 1), "chat_member_event"))
    store.close()
    db = next(tmp_path.joinpath("old").glob("*.sqlite3"))
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE memberships DROP COLUMN prior_at")
    conn.execute("ALTER TABLE memberships DROP COLUMN confirmed_at")
    conn.execute("ALTER TABLE memberships DROP COLUMN seen_times")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return uri, club, db


def test_a_store_written_before_status_confirmations_is_upgraded_on_open(tmp_path):
    """A schema 1 store (no prior_at column) opens, keeps its members and takes the new rule."""
    from datetime import datetime

    from tgsync_cli.core.events import Person
    from tgsync_cli.core.evidence import Observation

    uri, club, _db = schema_1_store(tmp_path)
    store = open_store(uri)
    store.observe_many(club, [Observation(Person(5), "active", "member", datetime(2025, 2, 1), "member_import")])
    m = store.member(club, 5)
    assert (m["status_at"], m["hard_at"]) == (datetime(2025, 1, 1), datetime(2025, 2, 1))
    assert store.check() == []
    store.close()


def test_a_schema_1_store_is_read_as_it_is_and_upgraded_by_the_next_writer(tmp_path):
    """A reading command (roster, export) on a store an older tgsync wrote shows its members and
    leaves the file alone; the next command that writes upgrades it."""
    import sqlite3
    from datetime import datetime

    from tgsync_cli.core.events import Person
    from tgsync_cli.core.evidence import Observation

    uri, club, db = schema_1_store(tmp_path)

    reader = open_store(uri, create=False)
    assert [(m["telegram_id"], m["status"]) for m in reader.club_by_id(club)["members"]] == [(5, "active")]
    assert reader.member(club, 5)["status_at"] == datetime(2025, 1, 1)
    reader.close()
    read_only = open_store(uri, create=False, read_only=True)  # roster, clubs, history: no write access asked
    assert read_only.member(club, 5)["status"] == "active"
    read_only.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)
    conn.close()

    writer = open_store(uri)
    writer.observe(club, Observation(Person(6), "active", "member", datetime(2025, 2, 1), "chat_member_event"))
    writer.close()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
    assert conn.execute("PRAGMA user_version").fetchone() == (3,)
    conn.close()
