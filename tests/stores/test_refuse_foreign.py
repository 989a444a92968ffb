"""A store file that is damaged, or is not tgsync's, is refused by every command (writers too),
and what tgsync creates on disk stays where it was asked and is the owner's only."""

import hashlib
import json
import os
import sqlite3
import stat

import pytest
from typer.testing import CliRunner

from tests import botapi_updates as U
from tgsync_cli.cli import app
from tgsync_cli.core.errors import ConfigError, StoreError
from tgsync_cli.stores import open_store
from tgsync_cli.stores.sqlite_schema import APPLICATION_ID

T = 1_735_000_000
runner = CliRunner()


def replay(tmp_path, store, *lines):
    f = tmp_path / "updates.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return runner.invoke(app, ["replay", str(f), "--store", store])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def club_store(tmp_path):
    """A store holding one club of 400 members: many pages, so one can be zeroed."""
    store = f"file:{tmp_path}/store"
    res = replay(tmp_path, store, U.bot_added(T), *[U.message(T + i, 1000 + i) for i in range(1, 401)])
    assert res.exit_code == 0, res.output
    return store, tmp_path / "store" / "ayda_run.sqlite3"


def test_a_store_with_a_zeroed_page_is_refused_by_readers_and_writers_and_left_as_it_was(tmp_path, club_store):
    store, db = club_store
    page = 4096
    with db.open("r+b") as fh:
        fh.seek(page * 3)
        fh.write(b"\0" * page)
    before = digest(db)
    for args in (["roster", str(U.CHAT["id"]), "--json"], ["clubs"], ["forget", "1001", "--yes"]):
        r = runner.invoke(app, [*args, "--store", store])
        assert r.exit_code == 1, (args, r.output)
        assert "damaged" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = replay(tmp_path, store, U.message(T + 900, 5))
    assert r.exit_code == 1 and "damaged" in r.stderr, r.output
    assert digest(db) == before  # nothing was written around the damage


def test_another_programs_sqlite_file_named_like_the_store_gets_no_tables_added(tmp_path):
    (tmp_path / "store").mkdir()
    db = tmp_path / "store" / "ayda_run.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    conn.commit()
    conn.close()
    r = replay(tmp_path, f"file:{tmp_path}/store", U.bot_added(T))
    assert r.exit_code == 1 and "not a tgsync store" in r.stderr, r.output
    with pytest.raises(StoreError, match="not a tgsync store"):
        open_store(f"file:{tmp_path}/store")
    conn = sqlite3.connect(db)
    assert [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["invoices"]
    conn.close()


def test_a_sqlite_file_stamped_by_another_program_is_refused_even_when_empty(tmp_path):
    (tmp_path / "s").mkdir()
    conn = sqlite3.connect(tmp_path / "s" / "ayda_run.sqlite3")
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="application_id 1234"):
        open_store(f"file:{tmp_path}/s")


def test_a_new_store_carries_tgsyncs_marker_and_an_older_unmarked_store_still_opens(tmp_path):
    open_store(f"file:{tmp_path}/s").close()
    db = tmp_path / "s" / "ayda_run.sqlite3"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    conn.execute("PRAGMA application_id = 0")  # as a store written before the marker existed
    conn.commit()
    conn.close()
    with open_store(f"file:{tmp_path}/s", create=False) as s:
        assert s.club_by_group(-1) is None
    open_store(f"file:{tmp_path}/s").close()  # a writer stamps it
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


@pytest.mark.parametrize("name", ["../../../x", "a/b", "..", ".hidden", "c:\\x"])
def test_the_database_name_must_be_a_plain_name(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    with pytest.raises(ConfigError, match="store.database must be a plain name"):
        open_store(f"file:{tmp_path}/deep/er/store", database=name)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "er"]
    r = runner.invoke(app, ["clubs", "--store", f"file:{tmp_path}/deep/er/store"],
                      env={"TGSYNC_STORE_DATABASE": name})
    assert r.exit_code in (1, 2) and "plain name" in r.stderr, r.output
    assert not list(tmp_path.rglob("*.sqlite3"))


def test_every_directory_created_for_a_store_is_the_owners_only(tmp_path):
    old = os.umask(0o022)
    try:
        open_store(f"file:{tmp_path}/a/b/c").close()
    finally:
        os.umask(old)
    for d in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_a_world_writable_config_holding_secrets_is_refused_and_one_without_only_warned(bare):
    cfg = bare / "tgsync.toml"
    cfg.write_text('[telegram]\nbot_token = "123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"\n')
    cfg.chmod(0o666)
    r = runner.invoke(app, ["clubs", "--store", "memory:"])
    assert r.exit_code == 1, r.output
    assert "can be changed by any user" in r.stderr and "AAAA" not in r.stderr
    cfg.write_text('[store]\nuri = "memory:"\n')
    cfg.chmod(0o666)
    r = runner.invoke(app, ["clubs"])
    assert r.exit_code == 0 and "can be changed by other users" in r.stderr, r.output
