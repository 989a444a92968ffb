"""The app's database holds shapes tgsync never writes: non-documents inside `members`, a null
element there, membership_log entries in other shapes, numbers for times, terminal escapes in
what the app stored. An operator's commands read all of it without a crash, show it literally,
and leave every byte of it where the app put it."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from typer.testing import CliRunner

from tests import botapi_updates as bu
from tests.app_db import GROUP, make_app_database, serve_client
from tgsync_cli.cli import app as cli

ODD_MEMBERS = ["garbage", 5, None, ["x"],
               {"telegram_id": "abc", "first_name": "text id"},
               {"user_id": "user_walkin", "first_name": "Walk-in", "status": "pending"}]


@pytest.fixture
def appdb(monkeypatch, bare):
    a = make_app_database("mongomock")
    serve_client(monkeypatch, a)
    assert run("--store", a.uri, "store", "init").exit_code == 0
    return a


def run(*args):
    return CliRunner().invoke(cli, list(args))


def add_odd_members(appdb):
    appdb.db.clubs.update_one({"_id": "club_app_srg"}, {"$push": {"members": {"$each": ODD_MEMBERS}}})


def odd_members(appdb):
    members = appdb.db.clubs.find_one({"_id": "club_app_srg"})["members"]
    return [m for m in members if not isinstance(m, dict) or m.get("user_id") == "user_walkin"
            or m.get("telegram_id") == "abc"]


def test_non_documents_in_the_apps_members_do_not_stop_reading_commands(appdb):
    add_odd_members(appdb)
    for args in (("clubs",), ("clubs", "--json"), ("roster", str(GROUP)), ("roster", str(GROUP), "--json"),
                 ("member", "777666"), ("history", str(GROUP)), ("stats", str(GROUP)), ("doctor", "--json")):
        r = run("--store", appdb.uri, *args)
        assert "cannot reach" not in r.stderr and "internal error" not in r.stderr, (args, r.stderr)
        assert r.exit_code in (0, 1 if args[0] == "doctor" else 0), (args, r.output)
    assert odd_members(appdb) == ODD_MEMBERS


def test_a_newcomer_joins_a_club_whose_members_hold_a_null_and_the_apps_entries_stay(appdb, tmp_path):
    add_odd_members(appdb)
    chat = {"id": GROUP, "type": "supergroup", "title": "SRG"}
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps({"update_id": 1, "message": {"message_id": 1, "date": 1733821200, "chat": chat,
                                                          "text": "hi", "from": bu.user(4711, "New")}}) + "\n")
    r = run("--store", appdb.uri, "replay", str(f))
    assert r.exit_code == 0, r.output
    assert odd_members(appdb) == ODD_MEMBERS  # the array was not emptied as if it were null
    members = appdb.db.clubs.find_one({"_id": "club_app_srg"})["members"]
    assert [m.get("telegram_id") for m in members if isinstance(m, dict)].count(4711) == 1
    assert len(members) == 5 + len(ODD_MEMBERS) + 1


def test_store_copy_back_into_the_app_keeps_what_it_could_not_read(appdb, tmp_path):
    add_odd_members(appdb)
    local = f"file:{tmp_path}/local"
    assert run("store", "copy", "--from", appdb.uri, "--to", local).exit_code == 0
    r = run("store", "copy", "--from", local, "--to", appdb.uri)
    assert r.exit_code == 0, r.output
    assert odd_members(appdb) == ODD_MEMBERS


LOG = [
    {"club_id": "club_app_srg", "telegram_id": "777666", "at": "2024-12-01T10:00:00Z", "from": None,
     "to": {"status": "active", "role": "member"}, "source": "app"},
    {"club_id": "club_app_srg", "telegram_id": 777666, "at": "not a time", "from": "x", "to": None},
    {"club_id": "club_app_srg", "at": None},
    {"weird": True},
    {"_id": "app_chosen_id", "club_id": "club_app_srg", "telegram_id": 777666.0, "at": datetime(2024, 12, 3),
     "from": "active", "to": {"status": "left", "role": "coach"}, "source": "\x1b[31mapp\x1b]0;t\x07"},
]


def test_history_member_and_stats_read_log_entries_the_app_wrote(appdb):
    appdb.db.membership_log.insert_many([dict(e) for e in LOG])
    for args in (("history", str(GROUP)), ("member", "777666"), ("stats", str(GROUP))):
        r = run("--store", appdb.uri, *args)
        assert r.exit_code == 0, (args, r.output)
        assert "\x1b" not in r.stdout  # the app's escape codes are shown, not obeyed
    view = json.loads(run("--store", appdb.uri, "member", "777666", "--json").stdout)
    assert [(e["at"], e["to"]["status"]) for e in view["log"]] == \
        [("2024-12-01T10:00:00Z", "active"), ("2024-12-03T00:00:00Z", "left")]  # the string id's entry too
    stats = json.loads(run("--store", appdb.uri, "stats", str(GROUP), "--json", "--weeks", "520").stdout)
    assert sum(w["joined"] for w in stats["weeks"]) >= 1
    assert appdb.db.membership_log.count_documents({}) == len(LOG)


def test_numbers_the_app_keeps_as_times_are_read_as_unix_time_or_not_at_all(appdb, tmp_path):
    appdb.db.users.update_one({"_id": "user_plain"}, {"$set": {"created_at": 17, "updated_at": 1733821200}})
    r = run("store", "copy", "--from", appdb.uri, "--to", f"file:{tmp_path}/local", "--json")
    assert r.exit_code == 0, r.output
    member = json.loads(run("--store", f"file:{tmp_path}/local", "member", "777666", "--json").stdout)
    assert member["account"].get("created_at") is None
    assert appdb.db.users.find_one({"_id": "user_plain"})["created_at"] == 17


def test_forget_keeps_every_app_account_of_the_person_whatever_form_holds_the_id(appdb):
    appdb.db.users.insert_one({"_id": "user_plain_twin", "telegram_id": "777666", "phone": "+7 702"})
    appdb.db.membership_log.insert_one({"club_id": "club_app_srg", "telegram_id": "777666",
                                        "at": "2024-12-01T10:00:00Z", "to": {"status": "active"}})
    r = run("--store", appdb.uri, "forget", "777666", "--yes")
    assert r.exit_code == 0, r.output
    twin = appdb.db.users.find_one({"_id": "user_plain_twin"})
    assert twin == {"_id": "user_plain_twin", "phone": "+7 702"}  # the app's field kept, the id gone
    assert appdb.db.users.find_one({"_id": "user_plain"})["phone"] == "+7 700 000 0000"
    assert appdb.db.membership_log.count_documents({}) == 0  # the log keyed by the string id too


def test_an_import_into_a_club_with_non_documents_in_members_adds_people_and_keeps_them(appdb, tmp_path):
    add_odd_members(appdb)
    export = tmp_path / "result.json"
    export.write_text(json.dumps({"name": "SRG", "type": "private_group", "id": 1001777000, "messages": [
        {"id": 1, "type": "message", "date": "2025-01-01T07:00:00", "date_unixtime": "1735714800",
         "from": "Plain", "from_id": "user777666", "text": "hi"},
        {"id": 2, "type": "message", "date": "2025-01-01T07:01:00", "date_unixtime": "1735714860",
         "from": "New", "from_id": "user4711", "text": "hi"}]}))
    r = run("import-history", str(export), "--chat", str(GROUP), "--no-verify", "--store", appdb.uri, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == 1
    assert odd_members(appdb) == ODD_MEMBERS
    members = appdb.db.clubs.find_one({"_id": "club_app_srg"})["members"]
    assert [m.get("telegram_id") for m in members if isinstance(m, dict)].count(777666) == 1


def test_csv_shows_formula_like_text_from_the_app_or_telegram_as_text(appdb):
    appdb.db.clubs.update_one({"_id": "club_app_srg"}, {"$set": {"name": "=evil()"}, "$push": {"members": {"$each": [
        {"user_id": "user_f", "first_name": "=1+1", "role": "+coach", "status": "@pending"},
        {"telegram_id": 5151, "first_name": "=HYPERLINK(\"http://x\")", "username": "-u", "status": "active"}]}}})
    roster = run("--store", appdb.uri, "roster", str(GROUP), "--csv").stdout.splitlines()
    assert ",,'=1+1,'+coach,'@pending,,,,,True" in roster
    assert any(line.startswith("5151,'-u,\"'=HYPERLINK(\"\"http://x\"\")\"") for line in roster)
    clubs = run("--store", appdb.uri, "clubs", "--csv").stdout
    assert "club_app_srg,-1001777000,'=evil()," in clubs  # the chat id stays a number
