"""The app writes into the same club documents while tgsync decides: a field the app `$set`
between tgsync's read and its write survives, and a member the app `$pull`ed comes back only on
newer Telegram evidence. "The app" writes inside that window through a wrapper around the clubs
collection (mongomock): just before tgsync's next guarded update reaches the database."""

from datetime import datetime, timedelta

import pytest

from tests.app_db import COACH, PLAIN, make_app_database
from tests.stores.backends import join, leave, message
from tgsync_cli.stores.mongo import open_mongo
from tgsync_cli.stores.mongo_indexes import ensure

T = datetime(2024, 12, 10, 9, 0)
CLUB = "club_app_srg"


class AppInTheWindow:
    """tgsync's clubs collection; `arm(write)` makes the app run `write` on the real collection
    right before tgsync's next update_one (after tgsync read the member, before its write lands)."""

    def __init__(self, coll):
        self._coll, self._write = coll, None
        self.fired = 0

    def arm(self, write):
        self._write = write

    def update_one(self, flt, upd, **kw):
        if self._write is not None:
            write, self._write = self._write, None
            write(self._coll)
            self.fired += 1
        return self._coll.update_one(flt, upd, **kw)

    def __getattr__(self, name):
        return getattr(self._coll, name)


@pytest.fixture
def setup():
    app = make_app_database("mongomock")
    ensure(app.db)
    store = open_mongo(app.uri, client=app.store_client)
    store.club_index()  # what start-up reads: the members each club has
    window = AppInTheWindow(store.db.clubs)
    store.db.clubs = store.clubs = window  # the collection every part of the store writes through
    yield app, store, window
    store.close()


def member(app, tid):
    doc = app.db.clubs.find_one({"_id": CLUB})
    return next((m for m in doc["members"] if str(m.get("telegram_id")) == str(tid)), None)


def app_sets(tid, **fields):
    return lambda coll: coll.update_one({"_id": CLUB, "members.telegram_id": tid},
                                        {"$set": {f"members.$.{k}": v for k, v in fields.items()}})


def app_pulls(tid):
    return lambda coll: coll.update_one({"_id": CLUB}, {"$pull": {"members": {"telegram_id": tid}}})


def test_a_field_the_app_sets_during_a_promotion_survives_it(setup):
    app, store, window = setup
    window.arm(app_sets(PLAIN, city="Astana", shoe="Pegasus"))
    store.observe(CLUB, join(PLAIN, T, role="organizer"))
    m = member(app, PLAIN)
    assert window.fired == 1
    assert (m["role"], m["city"], m["shoe"], m["pace"]) == ("organizer", "Astana", "Pegasus", "5:30")


def test_a_field_the_app_sets_during_a_listing_and_a_flush_survives_them(setup):
    app, store, window = setup
    window.arm(app_sets(PLAIN, city="Taraz"))
    store.observe_many(CLUB, [join(PLAIN, T, source="member_import")])
    assert member(app, PLAIN)["city"] == "Taraz"
    window.arm(app_sets(PLAIN, city="Oral"))
    store.flush_last_seen({(CLUB, PLAIN): T + timedelta(hours=1)})
    m = member(app, PLAIN)
    assert (m["city"], m["last_seen"]) == ("Oral", "2024-12-10T10:00:00Z")


def test_an_app_role_set_in_the_window_is_decided_again_not_overwritten(setup):
    app, store, window = setup
    window.arm(app_sets(PLAIN, role="coach"))
    store.observe_many(CLUB, [join(PLAIN, T, source="member_import")])  # Telegram: a member
    assert member(app, PLAIN)["role"] == "coach"
    window.arm(app_sets(COACH, city="Almaty"))
    store.observe(CLUB, join(COACH, T, role="organizer"))  # promoted to admin: organizer
    assert (member(app, COACH)["role"], member(app, COACH)["city"]) == ("organizer", "Almaty")


def test_a_member_the_app_removes_in_the_window_is_not_brought_back_by_old_evidence(setup):
    app, store, window = setup
    window.arm(app_pulls(PLAIN))
    store.observe(CLUB, message(PLAIN, datetime(2024, 11, 30, 8, 0)))  # older than their status
    assert window.fired == 1 and member(app, PLAIN) is None
    window.arm(app_pulls(COACH))
    store.observe(CLUB, leave(COACH, T))  # a leave: nothing to bring back
    assert member(app, COACH) is None


def test_a_member_the_app_removes_is_not_brought_back_by_a_listing_or_a_flush(setup):
    app, store, window = setup
    window.arm(app_pulls(PLAIN))
    store.flush_last_seen({(CLUB, PLAIN): T})
    assert member(app, PLAIN) is None
    store.observe_many(CLUB, [join(COACH, T, source="member_import")], complete_at=T)  # PLAIN unlisted
    assert member(app, PLAIN) is None


def test_fresh_telegram_evidence_after_the_apps_removal_brings_the_member_back(setup):
    app, store, window = setup
    window.arm(app_pulls(PLAIN))
    store.observe(CLUB, message(PLAIN, T))  # newer than anything known of them
    m = member(app, PLAIN)
    assert m is not None and m["status"] == "active" and m["last_seen"] == "2024-12-10T09:00:00Z"
    assert sum(1 for x in app.db.clubs.find_one({"_id": CLUB})["members"] if x.get("telegram_id") == PLAIN) == 1


def test_store_copy_merging_a_member_keeps_a_newer_status_the_app_wrote_meanwhile(setup, tmp_path):
    from tgsync_cli.stores import open_store
    from tgsync_cli.stores.copy import copy_store
    from tgsync_cli.core.rules import parse_iso

    app, store, window = setup
    src = open_store(f"file:{tmp_path}/src")
    cid = src.create_club(-1001777000, "SRG", None, {"bot_present": True})[0]["_id"]
    src.observe(cid, join(PLAIN, parse_iso("2024-12-04T00:00:00Z")))
    src.observe(cid, leave(PLAIN, parse_iso("2024-12-05T00:00:00Z")))  # newer than the app's entry
    window.arm(app_sets(PLAIN, status="kicked", status_at="2024-12-20T00:00:00Z", city="Astana"))
    copy_store(src, store)
    src.close()
    assert window.fired == 1
    m = member(app, PLAIN)
    assert (m["status"], m["status_at"], m["city"], m["pace"]) == ("kicked", "2024-12-20T00:00:00Z", "Astana", "5:30")
