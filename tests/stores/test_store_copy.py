"""`tgsync store copy`: every club, account, log entry and departure arrives; twice is once;
secrets in URIs never show."""

import json
from datetime import datetime, timedelta

import mongomock
from typer.testing import CliRunner

from tgsync_cli import stores
from tgsync_cli.cli import app
from tgsync_cli.core.errors import StoreUnavailable
from tgsync_cli.stores import open_store
from tgsync_cli.stores.copy import copy_store
from tgsync_cli.stores.mongo import open_mongo
from tests.stores.backends import comparable, join, leave, message

T = datetime(2025, 5, 1, 8)


def busy(store):
    cid = store.create_club(-1001, "Sunday Long Run", None, {"bot_present": True})[0]["_id"]
    store.migrate_club(cid, -1001, -1002)
    other = store.create_club(-1003, "Trails", None, {})[0]["_id"]
    for i, ob in enumerate([join(1, T, role="organizer", source="admin_import"), message(2, T + timedelta(minutes=1)),
                            join(3, T, invite_link="spring"), leave(3, T + timedelta(minutes=5)),
                            leave(4, T + timedelta(minutes=6))]):
        store.observe(cid, ob)
    store.observe(other, join(2, T))
    store.flush_last_seen({(cid, 2): T + timedelta(hours=1)})
    return store


def everything(store):
    docs = store.export()
    return comparable(store), sorted(repr(sorted((k, repr(v)) for k, v in e.items())) for e in docs["membership_log"]), \
        [(c["telegram_group_id"], c.get("previous_group_ids"), c["sync"]) for c in docs["clubs"]]


def test_embedded_to_mongodb_and_back_keeps_every_document(tmp_path):
    src = busy(open_store(f"file:{tmp_path}/src"))
    mongo = open_mongo("mongodb://mongomock", "ayda", client=mongomock.MongoClient())
    rep = copy_store(src, mongo)
    assert (rep.clubs, rep.members, rep.users, rep.departures) == (2, 4, 3, 1)
    assert rep.membership_log == len(src.membership_log()) > 0
    back = open_store(f"file:{tmp_path}/back")
    copy_store(mongo, back)
    assert everything(mongo) == everything(src) == everything(back)
    assert mongo.club_by_group(-1001)["_id"] == src.club_by_group(-1002)["_id"]  # ids kept, old id found


def test_copying_twice_is_copying_once(tmp_path):
    busy(open_store(f"file:{tmp_path}/a")).close()
    runner = CliRunner()
    args = ["store", "copy", "--from", f"file:{tmp_path}/a", "--to", f"file:{tmp_path}/b", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    after_one = everything(open_store(f"file:{tmp_path}/b"))
    second = runner.invoke(app, args)
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert everything(open_store(f"file:{tmp_path}/b")) == after_one == everything(open_store(f"file:{tmp_path}/a"))


def test_a_missing_source_is_refused_and_nothing_is_created(tmp_path):
    res = CliRunner().invoke(app, ["store", "copy", "--from", f"file:{tmp_path}/nothing",
                                   "--to", f"file:{tmp_path}/b"])
    assert res.exit_code == 1 and "no store at" in res.stderr
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "b").exists()


def test_a_password_in_either_uri_never_shows(tmp_path, monkeypatch):
    uri = "mongodb://ayda_ops:hunter2-secret@db.example:27017/ayda"

    def unreachable(u, database="ayda_run", **kw):
        if u.startswith("mongodb"):
            raise StoreUnavailable(f"cannot reach {u} (auth ayda_ops:hunter2-secret)")
        return open_store(u, database, **kw)

    monkeypatch.setattr(stores, "open_store", unreachable)
    busy(open_store(f"file:{tmp_path}/a")).close()
    for args in (["--from", f"file:{tmp_path}/a", "--to", uri], ["--from", uri, "--to", f"file:{tmp_path}/b"]):
        res = CliRunner().invoke(app, ["store", "copy", *args])
        assert res.exit_code == 1
        assert "hunter2" not in res.output + res.stderr and "mongodb://***@db.example" in res.stderr
