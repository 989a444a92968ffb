"""An operator points every command at a copy of the Ayda Run app's database (tests/app_db.py):
nothing the app wrote is lost, doubled or crashes a command. MongoDB is mongomock behind
pymongo's client class, so the `mongodb://` path runs with nothing leaving the machine."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests import botapi_updates as bu
from tests.app_db import APP_ONLY_USER, GROUP, OTHER_GROUP, PLAIN, STRING_ID, app_fields, make_app_database, serve_client
from tests.worlds import CHAT, Story, play
from tgsync_cli import ops
from tgsync_cli.cli import app as cli
from tgsync_cli.core.rules import parse_iso
from tgsync_cli.stores import open_store
from tgsync_cli.stores.mongo import open_mongo


@pytest.fixture
def appdb(monkeypatch, bare):
    a = make_app_database("mongomock")
    serve_client(monkeypatch, a)
    return a


def run(*args, **kw):
    return CliRunner().invoke(cli, list(args), **kw)


def init(appdb):
    r = run("--store", appdb.uri, "store", "init")
    assert r.exit_code == 0, r.output
    return r


def test_reading_commands_work_before_init_and_say_what_to_run(appdb):
    r = run("--store", appdb.uri, "roster", str(GROUP), "--json")
    assert r.exit_code == 0, r.output
    assert "tgsync store init" in r.stderr
    club = json.loads(r.stdout)
    app_only = [m for m in club["members"] if m.get("app_only")]
    assert [m["user_id"] for m in app_only] == [APP_ONLY_USER]
    table = run("--store", appdb.uri, "roster", str(GROUP))
    assert table.exit_code == 0 and "app only" in table.stdout
    clubs = run("--store", appdb.uri, "clubs", "--json")
    assert clubs.exit_code == 0, clubs.output
    assert [c["telegram_group_id"] for c in json.loads(clubs.stdout)] == [OTHER_GROUP, GROUP]
    assert run("--store", appdb.uri, "clubs", "--csv").exit_code == 0


def test_a_writing_command_before_init_fails_in_one_line_naming_the_command(appdb, tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps(bu.message(1733821200, uid=PLAIN)) + "\n")
    r = run("--store", appdb.uri, "replay", str(f))
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and "run `tgsync store init`" in r.stderr
    assert "DuplicateKeyError" not in r.stderr and "cannot reach" not in r.stderr


def test_store_init_says_what_it_creates_and_twice_creates_nothing(appdb):
    first = init(appdb)
    assert "created  clubs.telegram_group_id (unique where it is a number)" in first.stdout
    second = init(appdb)
    assert "nothing to create" in second.stdout and "created " not in second.stdout.replace("created 0", "")
    j = json.loads(run("--store", appdb.uri, "store", "init", "--json").stdout)
    assert j["database"] == "ayda" and j["created"] == []


def test_replayed_updates_on_the_apps_database_keep_its_shapes(appdb, tmp_path):
    init(appdb)
    before = app_fields(appdb.db)
    chat = {"id": GROUP, "type": "supergroup", "title": "SRG Almaty"}
    lines = [
        {"update_id": 1, "message": {"message_id": 1, "date": 1733821200, "chat": chat, "text": "hi",
                                     "from": bu.user(STRING_ID, "Str", username="StringId")}},
        {"update_id": 2, "message": {"message_id": 2, "date": 1733821260, "chat": chat, "text": "hi",
                                     "from": bu.user(PLAIN, "Plain")}},
        {"update_id": 3, "chat_member": {"chat": chat, "from": bu.user(1), "date": 1733821320,
                                         "old_chat_member": {"user": bu.user(4711, "New"), "status": "left"},
                                         "new_chat_member": {"user": bu.user(4711, "New"), "status": "member"}}},
    ]
    f = tmp_path / "u.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = run("--store", appdb.uri, "replay", str(f))
    assert r.exit_code == 0, r.output
    after = app_fields(appdb.db)
    assert {k: after.get(k) for k in before} == before
    members = appdb.db.clubs.find_one({"_id": "club_app_srg"})["members"]
    assert sum(1 for m in members if str(m.get("telegram_id")) == str(STRING_ID)) == 1
    new = next(m for m in members if m.get("telegram_id") == 4711)
    assert new["joined_at"] == "2024-12-10T09:02:00Z"  # the app's form
    assert appdb.db.users.count_documents({"telegram_id": {"$in": [STRING_ID, str(STRING_ID)]}}) == 1


def test_a_uri_and_a_different_store_database_is_a_usage_error(appdb, monkeypatch):
    monkeypatch.setenv("TGSYNC_STORE_DATABASE", "ayda_run")
    r = run("--store", appdb.uri, "clubs")
    assert r.exit_code == 2 and "names the database 'ayda'" in r.stderr
    monkeypatch.setenv("TGSYNC_STORE_DATABASE", "ayda")  # the same: fine
    assert run("--store", appdb.uri, "clubs").exit_code == 0


def test_store_database_applies_when_the_uri_names_none(appdb, monkeypatch):
    monkeypatch.setenv("TGSYNC_STORE_DATABASE", "ayda")
    r = run("--store", "mongodb://localhost:27017", "roster", str(GROUP), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["name"] == "SRG Almaty (app)"


def test_store_copy_merges_into_the_apps_club(appdb, tmp_path):
    init(appdb)
    src_uri = f"file:{tmp_path}/embedded"
    src = open_store(src_uri, "tgsync")
    cid = src.create_club(GROUP, "SRG on Telegram", None, {"bot_present": True})[0]["_id"]
    from tests.stores.backends import join, message
    t = parse_iso("2024-12-20T08:00:00Z")
    src.observe(cid, join(PLAIN, parse_iso("2024-11-01T08:00:00Z"), role="organizer"))  # earlier evidence
    src.observe(cid, message(9001, t))
    src.close()
    before = app_fields(appdb.db)

    dry = run("store", "copy", "--from", src_uri, "--from-database", "tgsync", "--to", appdb.uri, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "merge into club_app_srg" in dry.stdout and "add 1" in dry.stdout and "keep 1 app-only" in dry.stdout
    assert appdb.db.clubs.find_one({"_id": "club_app_srg"})["members"] == \
        next(c for c in app_fields_clubs(appdb) if c["_id"] == "club_app_srg")["members"]

    r = run("store", "copy", "--from", src_uri, "--from-database", "tgsync", "--to", appdb.uri)
    assert r.exit_code == 0, r.output
    after = app_fields(appdb.db)
    assert {k: after.get(k) for k in before} == before  # city, name, app-only member, phone…
    doc = appdb.db.clubs.find_one({"_id": "club_app_srg"})
    assert doc["name"] == "SRG Almaty (app)" and appdb.db.clubs.count_documents({"telegram_group_id": GROUP}) == 1
    plain = next(m for m in doc["members"] if m.get("telegram_id") == PLAIN)
    assert (plain["role"], plain["joined_at"], plain["pace"]) == ("organizer", "2024-11-01T08:00:00Z", "5:30")
    assert any(m.get("telegram_id") == 9001 for m in doc["members"])
    assert len(doc["members"]) == 6
    again = run("store", "copy", "--from", src_uri, "--from-database", "tgsync", "--to", appdb.uri, "--dry-run")
    assert "add 0, update 0" in again.stdout  # a second copy would change nothing


def app_fields_clubs(appdb):
    return list(appdb.db.clubs.find({}))


def test_store_copy_databases_are_per_side(appdb, tmp_path):
    r = run("store", "copy", "--from", appdb.uri, "--from-database", "other", "--to", f"file:{tmp_path}/x")
    assert r.exit_code == 2 and "--from-database" in r.output


def test_reconcile_reports_app_only_members_apart_and_never_marks_them(appdb, monkeypatch):
    init(appdb)
    store = open_mongo(appdb.uri)
    gw = play(Story({1: "creator", 2: "member", 3: "member"}).bot_added(as_="administrator"), store)
    club = store.club_by_group(CHAT)
    appdb.db.clubs.update_one({"_id": club["_id"]}, {"$push": {"members": {  # the app adds someone
        "user_id": APP_ONLY_USER, "role": "member", "status": "active", "joined_at": "2024-12-05T07:00:00Z"}}})
    out = ops.reconcile_clubs(store, gw, str(CHAT), False, parse_iso("2025-03-02T07:00:00Z"), yes=True)
    row = out.clubs[0]
    assert row.app_only == [APP_ONLY_USER] and row.marked_left == [] and row.drift == 0
    raw = appdb.db.clubs.find_one({"_id": club["_id"]})
    assert raw["sync"]["total_members_ayda"] == row.total_members_ayda == 4  # three on Telegram, one app-only
    app_only = next(m for m in raw["members"] if m.get("user_id") == APP_ONLY_USER)
    assert app_only == {"user_id": APP_ONLY_USER, "role": "member", "status": "active",
                        "joined_at": "2024-12-05T07:00:00Z"}
    from tgsync_cli.cli import render_ops
    from rich.console import Console
    console = Console(width=200, record=True)
    console.print(render_ops.reconcile_table(out))
    assert "in the app, not on Telegram" in " ".join(console.export_text().replace("│", " ").split())


def test_doctor_shows_the_databases_shape_before_anything_is_written(appdb):
    r = run("--store", appdb.uri, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]} if r.stdout.startswith("{") else \
        {c["name"]: c for c in json.loads(r.stdout)}
    assert r.exit_code == 1  # tgsync's indexes are missing: a failing check
    assert checks["store indexes"]["level"] == "fail" and "tgsync store init" in checks["store indexes"]["fix"]
    app = checks["the app's documents"]["detail"]
    assert "2 club(s) with no Telegram group (e.g. club_app_only_1)" in app
    assert "2 account(s) with no telegram_id (e.g. user_app_only_1)" in app
    assert "2 member(s) with no telegram_id (e.g. club_app_srg / user_app_only_1)" in app
    assert "1 member(s) with a role of the app's" in app
    forms = checks["stored forms"]["detail"]
    assert "1 account(s) with a string telegram_id (e.g. user_string)" in forms
    assert "member(s) with string dates" in forms and "1 member(s) with a double telegram_id" in forms
    assert "iso" in checks["database"]["detail"]
    assert appdb.db.clubs.index_information().keys() == {"_id_"}  # doctor wrote nothing
    assert sorted(appdb.db.list_collection_names()) == ["clubs", "users"]


def test_doctor_names_the_documents_that_would_break_an_index(appdb):
    appdb.db.users.insert_one({"_id": "user_twin", "telegram_id": 777666, "first_name": "Twin"})
    r = run("--store", appdb.uri, "doctor", "--json")
    out = json.loads(r.stdout)
    checks = {c["name"]: c for c in (out["checks"] if isinstance(out, dict) else out)}
    assert "1 accounts share a numeric telegram_id (e.g. user_plain)" in checks["index blockers"]["detail"]
    init_run = run("--store", appdb.uri, "store", "init")
    assert init_run.exit_code == 1 and "users.telegram_id" in init_run.stderr
    assert "tgsync doctor" in init_run.stderr


def test_doctor_after_init_passes_its_store_checks(appdb):
    init(appdb)
    r = run("--store", appdb.uri, "doctor", "--json")
    out = json.loads(r.stdout)
    checks = {c["name"]: c for c in (out["checks"] if isinstance(out, dict) else out)}
    assert checks["store indexes"]["level"] == "ok"
    assert not [c for c in checks.values() if c["name"] in ("store indexes", "index blockers")
                and c["level"] == "fail"]


def test_forget_says_the_app_still_has_an_account(appdb):
    init(appdb)
    r = run("--store", appdb.uri, "forget", str(PLAIN), "--yes")
    assert r.exit_code == 0, r.output
    assert "the app still has an account for them (user_plain)" in " ".join(r.stdout.split())
    assert appdb.db.users.find_one({"_id": "user_plain"})["phone"] == "+7 700 000 0000"


def test_member_history_and_stats_read_the_apps_shapes(appdb):
    init(appdb)
    r = run("--store", appdb.uri, "member", str(STRING_ID), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert "2024-12-01T11:00:00" in json.dumps(out) and "club_app_srg" in json.dumps(out)
    for args in (("history", str(GROUP)), ("stats", str(GROUP)), ("member", str(PLAIN))):
        res = run("--store", appdb.uri, *args)
        assert res.exit_code == 0, (args, res.output)


def test_store_copy_from_the_apps_database_takes_tgsyncs_documents_only(appdb, tmp_path):
    init(appdb)
    r = run("store", "copy", "--from", appdb.uri, "--to", f"file:{tmp_path}/local", "--json")
    assert r.exit_code == 0, r.output
    local = open_store(f"file:{tmp_path}/local")
    assert sorted(c["telegram_group_id"] for c in local.all_clubs()) == [OTHER_GROUP, GROUP]
    members = {m["telegram_id"]: m for m in local.club_by_group(GROUP)["members"]}
    assert STRING_ID in members and None not in members  # ids as numbers; the app's own stay behind
    assert members[STRING_ID]["joined_at"] == parse_iso("2024-12-01T11:00:00Z")
    assert local.user_by_telegram_id(STRING_ID) is not None
    local.close()


def test_store_init_reports_the_apps_own_index_on_the_same_keys_and_keeps_it(appdb):
    appdb.db.users.create_index("telegram_id", name="app_tid")  # the app's, not unique
    r = run("--store", appdb.uri, "store", "init")
    out = " ".join(r.stdout.split())
    assert "differs users.telegram_id (unique where it is a number)" in out
    assert "app_tid" in out and "tgsync never drops an index" in out and "need it unique" in out
    assert "app_tid" in appdb.db.users.index_information()
    assert "created clubs.telegram_group_id" in out
