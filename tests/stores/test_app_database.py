"""tgsync in the Ayda Run app's own MongoDB: given the app's documents (tests/app_db.py), every
read works, every write keeps the app's shapes, and nothing the app wrote is lost or doubled.
mongomock, and a real server as well when TGSYNC_TEST_MONGO_URI names one."""

from datetime import datetime, timedelta

import pytest

from tests.app_db import (
    APP_ONLY_USER,
    COACH,
    DOUBLE_ID,
    GROUP,
    OTHER_GROUP,
    PLAIN,
    STRING_ID,
    app_fields,
    make_app_database,
)
from tests.stores.backends import join, leave, message
from tgsync_cli.core.errors import StoreError
from tgsync_cli.core.store import Observation
from tgsync_cli.core.events import Person
from tgsync_cli.stores.mongo import open_mongo
from tgsync_cli.stores.mongo_indexes import ensure, inspect

T = datetime(2024, 12, 10, 9, 0)


@pytest.fixture(params=["mongomock", "real"])
def app(request):
    a = make_app_database(request.param)
    yield a
    a.drop()


@pytest.fixture
def store(app):
    ensure(app.db)  # `tgsync store init`, once
    s = open_mongo(app.uri, client=app.store_client)
    yield s
    s.close()


def club_raw(app, gid=GROUP):
    return app.db.clubs.find_one({"telegram_group_id": gid})


def raw_member(app, tid, gid=GROUP):
    for m in club_raw(app, gid)["members"]:
        if str(m.get("telegram_id")).split(".")[0] == str(tid):
            return m
    return None


# -- opening the app's database ------------------------------------------------------------------
def test_a_writing_command_on_the_apps_database_without_indexes_names_store_init(app):
    with pytest.raises(StoreError, match=r"store init"):
        open_mongo(app.uri, client=app.store_client)
    assert app.db.clubs.index_information().keys() == {"_id_"}  # nothing made behind the app's back
    assert sorted(app.db.list_collection_names()) == ["clubs", "users"]  # refused before any write
    reader = open_mongo(app.uri, client=app.store_client, create=False)
    assert "tgsync store init" in reader.index_warning
    assert reader.club_by_group(GROUP)["name"] == "SRG Almaty (app)"


def test_store_init_builds_partial_indexes_over_app_only_documents_once(app):
    first = ensure(app.db)
    assert [s.want.label for s in first if s.state == "failed"] == []
    assert {s.want.label for s in first if s.state == "created"} >= {"clubs.telegram_group_id", "users.telegram_id"}
    assert [s.state for s in ensure(app.db)] == ["present"] * len(first)  # idempotent
    spec = next(v for v in app.db.users.index_information().values() if v["key"] == [("telegram_id", 1)])
    assert spec["unique"] and spec["partialFilterExpression"] == {"telegram_id": {"$type": "number"}}
    # the app's documents still fit: another account with no Telegram id goes in
    app.db.users.insert_one({"_id": "user_app_only_3", "first_name": "Zhan"})


def test_an_index_the_app_made_on_the_same_keys_is_reported_never_dropped(app):
    app.db.clubs.create_index("username", name="app_username", sparse=True)
    states = {s.want.label: s for s in ensure(app.db)}
    assert states["clubs.username"].state in ("differs", "present")
    assert "app_username" in app.db.clubs.index_information()
    app.db.users.create_index("telegram_id", name="app_tid")  # not unique: tgsync's guarantee is missing
    st = {s.want.label: s for s in inspect(app.db)}["users.telegram_id"]
    assert st.state == "missing" and "app_tid" in st.detail
    assert {s.want.label: s.state for s in ensure(app.db)}["users.telegram_id"] == "differs"
    assert "app_tid" in app.db.users.index_information()


def test_the_uri_names_the_database(app):
    s = open_mongo(app.uri, client=app.store_client, create=False)
    assert s._db.name == app.name
    from tgsync_cli.stores.mongo_database import DatabaseConflict
    with pytest.raises(DatabaseConflict) as exc:
        open_mongo(app.uri, "ayda_run", client=app.client)
    assert exc.value.exit_code == 2


# -- reading every shape ----------------------------------------------------------------------------
def test_every_read_works_on_the_apps_shapes(store):
    idx = store.club_index()
    by_gid = {c["telegram_group_id"]: c for c in idx.clubs}
    assert set(by_gid) == {GROUP, OTHER_GROUP}  # the app's clubs with no group are not tgsync's
    assert sorted(by_gid[GROUP]["active"]) == sorted([PLAIN, STRING_ID, COACH])
    assert [c["telegram_group_id"] for c in store.all_clubs()] == [OTHER_GROUP, GROUP]
    doc = store.club_by_group(GROUP)
    ms = {m["telegram_id"]: m for m in doc["members"]}
    assert ms[STRING_ID]["joined_at"] == datetime(2024, 12, 1, 11, 0)
    assert ms[DOUBLE_ID]["status"] == "left" and isinstance(list(ms)[2], int)
    assert ms[None]["user_id"] == APP_ONLY_USER  # the app-only member is read, not dropped
    other = store.club_by_group(OTHER_GROUP)["members"][0]
    assert other["joined_at"] == datetime(2024, 12, 1, 10, 0)  # "+05:00" read as UTC
    assert other["last_seen"] == datetime(2024, 12, 2, 10, 0)  # no zone: UTC
    assert store.user_by_telegram_id(STRING_ID)["_id"] == "user_string"
    assert store.user_by_telegram_id(DOUBLE_ID)["_id"] == "user_double"
    assert store.member(doc["_id"], STRING_ID)["role"] == "member"
    assert store.memberships_of(PLAIN) and store.export()["clubs"]
    assert store.club_by_username("nobody") is None


# -- writing in the app's forms ---------------------------------------------------------------------
def test_a_string_telegram_id_is_the_same_person_and_keeps_its_form(app, store):
    cid = "club_app_srg"
    out = store.observe(cid, join(STRING_ID, T, role="organizer"))
    assert not out.created and out.status == "active"
    raw = app.db.clubs.find_one({"_id": cid})["members"]
    assert sum(1 for m in raw if str(m.get("telegram_id")) == str(STRING_ID)) == 1
    m = raw_member(app, STRING_ID)
    assert m["telegram_id"] == str(STRING_ID) and m["role"] == "organizer"
    assert store.upsert_user(Person(STRING_ID, first_name="Str", username="StringId"), T) == "user_string"
    assert app.db.users.count_documents({"telegram_id": {"$in": [STRING_ID, str(STRING_ID)]}}) == 1
    assert app.db.users.find_one({"_id": "user_string"})["telegram_id"] == str(STRING_ID)


def test_a_double_telegram_id_is_matched_by_a_message_and_comes_back(app, store):
    cid = "club_app_srg"
    out = store.observe(cid, message(DOUBLE_ID, T))
    assert out.status == "active" and not out.created
    assert raw_member(app, DOUBLE_ID)["telegram_id"] == float(DOUBLE_ID)
    assert len([m for m in club_raw(app)["members"] if m.get("telegram_id") == DOUBLE_ID]) == 1


def test_times_are_written_in_the_form_the_collection_uses(app, store):
    assert store.forms["clubs"].form == "iso" and store.forms["users"].form == "iso"
    cid = "club_app_srg"
    store.observe(cid, join(4242, T))  # a newcomer: written like the app's members
    m = raw_member(app, 4242)
    assert m["joined_at"] == "2024-12-10T09:00:00Z" and m["status_at"] == "2024-12-10T09:00:00Z"
    assert app.db.users.find_one({"telegram_id": 4242})["created_at"] == "2024-12-10T09:00:00Z"
    store.flush_last_seen({(cid, PLAIN): T + timedelta(hours=1)})  # a string last_seen moves on
    assert raw_member(app, PLAIN)["last_seen"] == "2024-12-10T10:00:00Z"
    store.flush_last_seen({(cid, PLAIN): T})  # never backwards, across forms
    assert raw_member(app, PLAIN)["last_seen"] == "2024-12-10T10:00:00Z"
    store.update_sync(cid, {"last_sync": T})
    assert club_raw(app)["sync"]["last_sync"] == "2024-12-10T09:00:00Z"


def test_time_format_setting_overrides_detection(app):
    ensure(app.db)
    s = open_mongo(app.uri, client=app.store_client, time_format="date")
    s.observe("club_app_srg", join(4243, T))
    assert raw_member(app, 4243)["joined_at"] == T


def test_an_app_role_is_kept_until_telegram_promotes_and_demotes(app, store):
    cid = "club_app_srg"
    store.observe_many(cid, [join(COACH, T, source="member_import")])
    assert raw_member(app, COACH)["role"] == "coach"  # a listing says "member": the app's role stays
    store.observe(cid, join(COACH, T + timedelta(minutes=1), role="organizer"))
    assert raw_member(app, COACH)["role"] == "organizer"  # promoted to admin
    store.observe(cid, join(COACH, T + timedelta(minutes=2), role="member"))
    assert raw_member(app, COACH)["role"] == "member"  # demoted from admin


# -- the app's documents are the app's ----------------------------------------------------------------
def test_nothing_tgsync_does_changes_what_the_app_owns(app, store):
    before = app_fields(app.db)
    cid = "club_app_srg"
    listed = [join(t, T, source="member_import") for t in (PLAIN, STRING_ID, COACH, 5001)]
    outs = store.observe_many(cid, listed, complete_at=T)
    store.observe(cid, leave(PLAIN, T + timedelta(minutes=1)))
    store.observe(cid, message(PLAIN, T + timedelta(minutes=2)))
    store.flush_last_seen({(cid, STRING_ID): T + timedelta(minutes=3)})
    store.set_dm_blocked(PLAIN, True, T)
    store.create_club(-1001999, "New group", None, {"bot_present": True})
    store.settle()
    after = app_fields(app.db)
    assert {k: after.get(k) for k in before} == before
    assert not any(o.telegram_id is None for o in outs)
    app_only = next(m for m in club_raw(app)["members"] if m.get("user_id") == APP_ONLY_USER)
    assert app_only["status"] == "active"  # a complete listing never marks the app's member left
    assert store.active_count(cid) == 4  # Telegram members only (drift); the app-only one apart


def test_forget_leaves_the_app_only_member_and_accounts(app, store):
    before = {k: v for k, v in app_fields(app.db).items() if "user_plain" not in k}
    store.forget(PLAIN)
    after = {k: v for k, v in app_fields(app.db).items() if "user_plain" not in k}
    assert after == before
    assert raw_member(app, PLAIN) is None


# -- backends agree ---------------------------------------------------------------------------------
def test_username_look_up_is_case_insensitive(store):
    cid, _ = store.create_club(-1002001, "Case", None, {}, username="SundayLong")
    assert store.club_by_username("sundaylong")["_id"] == cid["_id"]
    assert store.club_by_username("SUNDAYLONG")["_id"] == cid["_id"]
    assert store.club_by_username("sunday.ong") is None  # a pattern character is a character


def test_a_listing_of_a_member_the_app_left_alone_keeps_their_app_fields(app, store):
    store.observe_many("club_app_srg", [join(PLAIN, T, role="organizer", source="member_import")])
    m = raw_member(app, PLAIN)
    assert (m["role"], m["city"], m["pace"]) == ("organizer", "Almaty", "5:30")


def test_an_observation_never_reaches_a_member_of_another_person(store):
    out = store.observe("club_app_srg", Observation(Person(1), "left", "member", T, "chat_member_event"))
    assert out.status is None


def test_forget_keeps_the_apps_account_without_its_telegram_fields(app, store):
    assert store.forget_preview(PLAIN)["app_account_kept"] == "user_plain"
    rep = store.forget(PLAIN)
    assert rep["app_account_kept"] == "user_plain" and rep["created_by_cleared"] == 0
    u = app.db.users.find_one({"_id": "user_plain"})
    assert u["phone"] == "+7 700 000 0000" and "telegram_id" not in u and "username" not in u
    assert store.user_by_telegram_id(PLAIN) is None
    assert app.db.clubs.find_one({"_id": "club_app_srg"})["created_by"] == "user_srg_owner"
    store.forget(COACH)  # an account with tgsync's fields only goes whole
    assert app.db.users.find_one({"_id": "user_coach"}) is None


def test_odd_shapes_of_a_telegram_club_never_stop_a_write(app):
    """A string group id, `members`/`sync` left null or missing, a time that is no time: the
    club is still the group's, and the first events land."""
    app.db.clubs.insert_many([
        {"_id": "club_odd_1", "name": "Odd", "telegram_group_id": "-1001777002", "members": None, "sync": None},
        {"_id": "club_odd_2", "name": "Bare", "telegram_group_id": -1001777004},
        {"_id": "club_odd_3", "telegram_group_id": -1001777005, "members": [
            {"telegram_id": 12, "joined_at": "soon", "status": "active", "last_seen": 17},
            {"telegram_id": "not a number", "role": 5}]},
    ])
    ensure(app.db)
    s = open_mongo(app.uri, client=app.store_client)
    assert {c["telegram_group_id"] for c in s.club_index().clubs} >= {-1001777002, -1001777004, -1001777005}
    assert s.club_by_group(-1001777002)["_id"] == "club_odd_1"
    assert s.observe("club_odd_1", join(14, T)).created
    assert s.update_sync("club_odd_1", {"last_sync": T}) and s.claim_welcome("club_odd_1")
    assert s.observe("club_odd_2", message(15, T)).created
    assert s.observe("club_odd_3", message(12, T)).status == "active"
    m = next(x for x in app.db.clubs.find_one({"_id": "club_odd_3"})["members"] if x.get("telegram_id") == 12)
    assert m["joined_at"] == "2024-12-10T09:00:00Z"  # the unknown time is set by the evidence
    assert app.db.clubs.find_one({"_id": "club_app_only_2"})["telegram_group_id"] is None
    s.close()


def test_a_flush_brings_back_a_member_the_app_holds_as_left_and_logs_it(app, store):
    store.flush_last_seen({("club_app_srg", DOUBLE_ID): T})
    store.settle()
    m = raw_member(app, DOUBLE_ID)
    assert (m["status"], m["status_at"], m["telegram_id"]) == ("active", "2024-12-10T09:00:00Z", float(DOUBLE_ID))
    entry = store.membership_log("club_app_srg", telegram_id=DOUBLE_ID)[-1]
    assert (entry["from"], entry["to"]) == ({"status": "left", "role": "member"}, {"status": "active", "role": "member"})
    app.db.clubs.update_one({"_id": "club_app_srg", "members.telegram_id": COACH},
                            {"$set": {"members.$.status": "left"}})  # the app's coach, left
    store.flush_last_seen({("club_app_srg", COACH): T})
    assert (raw_member(app, COACH)["status"], raw_member(app, COACH)["role"]) == ("active", "coach")
