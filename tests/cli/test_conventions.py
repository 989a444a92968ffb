"""The output conventions hold for every command: --csv wherever there is a table, --quiet for
scripts, --json with --csv refused, `store copy` refusing to copy a store onto itself however
the two are spelt, and a store failure saying what was being done in words."""

from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from tests.worlds import CHAT, Story
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd

runner = CliRunner()


@pytest.fixture
def seeded(tmp_path):
    store = f"file:{tmp_path}/store"
    story = (Story({1: "creator", 2: "member", 3: "member"}).bot_added()
             .then("message", user=2).then("leave", user=2).then("join", user=5, link="=cmd|'/c calc'!A0", link_by=1))
    assert runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", store]).exit_code == 0
    return store


def rows(res):
    assert res.exit_code == 0, res.output
    return list(csv.DictReader(io.StringIO(res.stdout)))


def test_history_member_and_stats_give_csv(seeded):
    history = rows(runner.invoke(app, ["history", str(CHAT), "--csv", "--store", seeded]))
    member = rows(runner.invoke(app, ["member", "2", "--csv", "--store", seeded]))
    stats = rows(runner.invoke(app, ["stats", str(CHAT), "--csv", "--until", "2025-03-01", "--store", seeded]))
    assert [(r["telegram_id"], r["change"]) for r in history][-2:] == [("2", "left"), ("5", "joined")]
    assert history[-1]["invite_link"] == "'=cmd|'/c calc'!A0"  # a formula, neutralised
    assert member[0]["status"] == "left" and member[0]["telegram_group_id"] == str(CHAT)
    doc = json.loads(runner.invoke(app, ["stats", str(CHAT), "--json", "--until", "2025-03-01",
                                         "--store", seeded]).stdout)
    assert stats[-1]["week_start"] == "2025-02-24"
    assert [int(r["joined"]) for r in stats] == [w["joined"] for w in doc["weeks"]]


def test_reconcile_gives_csv(seeded, tmp_path, monkeypatch):
    from tgsync_cli import app as core
    from tgsync_cli.sim.simulator import Simulator
    from tgsync_cli.stores import open_store

    store = open_store(f"file:{tmp_path}/other")
    sim = Simulator(Story({1: "creator", 2: "member"}).bot_added().scenario, lambda gw: core.make_engine(store, gw))
    sim.run()
    store.close()

    @contextmanager
    def connected(settings):
        yield sim.gateway

    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", connected)
    out = rows(runner.invoke(app, ["reconcile", str(CHAT), "--csv", "--store", f"file:{tmp_path}/other"]))
    assert out[0]["chat_id"] == str(CHAT) and out[0]["drift"] == "0"


def test_json_with_csv_is_a_usage_error(seeded):
    for cmd in (["roster", str(CHAT)], ["clubs"], ["history", str(CHAT)], ["stats", str(CHAT)], ["member", "2"]):
        res = runner.invoke(app, [*cmd, "--json", "--csv", "--store", seeded])
        assert res.exit_code == 2 and "--json and --csv: choose one" in res.stderr, cmd


def test_quiet_prints_nothing_but_errors(seeded):
    for cmd in (["roster", str(CHAT)], ["clubs"], ["history", str(CHAT)], ["stats", str(CHAT)]):
        res = runner.invoke(app, [*cmd, "--quiet", "--store", seeded])
        assert res.exit_code == 0 and res.stdout == "", cmd
    failing = runner.invoke(app, ["roster", "-100999", "-q", "--store", seeded])
    assert failing.exit_code == 1 and failing.stderr.startswith("error: no club for -100999")
    assert json.loads(runner.invoke(app, ["clubs", "-q", "--json", "--store", seeded]).stdout)
    assert runner.invoke(app, ["clubs", "--store", seeded]).stdout  # the next command is not quiet


@pytest.mark.parametrize("a,b", [("file:{d}/s", "file:{d}/./s/"), ("file:{d}/s", "file:{d}/link"),
                                 ("mongodb://h1:27017,h2/app", "mongodb://u:pw@H2:27017,h1/app?w=1"),
                                 ("mongodb://h1/", "mongodb://h1:27017/ayda_run")])
def test_store_copy_refuses_one_store_under_two_spellings(tmp_path, a, b):
    (tmp_path / "s").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "s")
    res = runner.invoke(app, ["store", "copy", "--from", a.format(d=tmp_path), "--to", b.format(d=tmp_path)])
    assert res.exit_code == 2 and "the same store" in res.stderr


def test_store_copy_takes_the_config_database(tmp_path):
    cfg = tmp_path / "tgsync.toml"
    cfg.write_text('[store]\ndatabase = "club_copy"\n')
    cfg.chmod(0o600)
    seeded = f"file:{tmp_path}/store"
    assert runner.invoke(app, ["simulate", str(Story().bot_added().write(tmp_path)), "--store", seeded,
                               "--config", str(cfg)]).exit_code == 0
    res = runner.invoke(app, ["store", "copy", "--from", seeded, "--to", f"file:{tmp_path}/copy",
                              "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "copy" / "club_copy.sqlite3").exists()


def test_a_store_failure_says_what_was_being_done():
    res = runner.invoke(app, ["clubs", "--store", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"])
    assert res.exit_code == 1 and "all_clubs" not in res.stderr and "club_by_group" not in res.stderr
    assert "cannot reach the database" in res.stderr or "listing the clubs failed" in res.stderr


def test_every_store_call_is_named_in_words_when_it_fails():
    import mongomock
    from pymongo.errors import AutoReconnect

    from tgsync_cli.core.errors import StoreUnavailable
    from tgsync_cli.stores.mongo_db import MongoDb

    db = MongoDb(mongomock.MongoClient()["t"], "mongodb://h/t")

    def lost():
        raise AutoReconnect("connection reset")

    for name, words in (("all_clubs", "listing the clubs"), ("club_by_group", "looking up the club of a chat"),
                        ("observe_many", "saving membership changes")):
        with pytest.raises(StoreUnavailable) as err:
            db.call(name, lost)
        assert str(err.value).startswith(f"mongodb://h/t: {words} failed (AutoReconnect: connection reset)")
