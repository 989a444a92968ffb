"""The app writes times as ISO strings in its own ways: with an offset (`-05:00`), with
milliseconds, with no zone, or a date alone. tgsync's guarded writes compare each as the time
it is, so a message never moves last_seen backwards or misses moving it forwards because the
app's text sorts differently from tgsync's."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.app_db import make_app_database
from tgsync_cli.stores.mongo import open_mongo
from tgsync_cli.stores.mongo_indexes import ensure

TID = 880001


@pytest.fixture
def club():
    app = make_app_database("mongomock")
    ensure(app.db)

    def given(last_seen: str):
        app.db.clubs.update_one({"_id": "club_app_trails"}, {"$push": {"members": {
            "user_id": "user_x", "telegram_id": TID, "role": "member", "status": "active",
            "joined_at": "2024-11-01T08:00:00-05:00", "status_at": "2024-11-01T08:00:00-05:00",
            "last_seen": last_seen, "source": "chat_member_event"}}})
        return app, open_mongo(app.uri, client=app.client)
    return given


def last_seen(app):
    doc = app.db.clubs.find_one({"_id": "club_app_trails"})
    return next(m for m in doc["members"] if m.get("telegram_id") == TID)["last_seen"]


@pytest.mark.parametrize("stored, message, after", [
    # -05:00: 10:00 there is 15:00 UTC. An older message (12:00 UTC) leaves it; a newer one moves it
    ("2024-12-02T10:00:00-05:00", datetime(2024, 12, 2, 12, 0), "2024-12-02T10:00:00-05:00"),
    ("2024-12-02T10:00:00-05:00", datetime(2024, 12, 2, 16, 0), "2024-12-02T16:00:00Z"),
    # +05:00: 10:00 there is 05:00 UTC: a message at 07:00 UTC is newer although "07" < "10"
    ("2024-12-02T10:00:00+05:00", datetime(2024, 12, 2, 7, 0), "2024-12-02T07:00:00Z"),
    ("2024-12-02T10:00:00+05:00", datetime(2024, 12, 2, 4, 0), "2024-12-02T10:00:00+05:00"),
    # no zone (UTC), and a date alone (its midnight)
    ("2024-12-02T10:00:00", datetime(2024, 12, 2, 9, 0), "2024-12-02T10:00:00"),
    ("2024-12-02", datetime(2024, 12, 2, 9, 0), "2024-12-02T09:00:00Z"),
])
def test_a_message_moves_last_seen_only_forwards_whatever_form_the_app_wrote(club, stored, message, after):
    app, store = club(stored)
    store.flush_last_seen({("club_app_trails", TID): message})
    assert last_seen(app) == after
    store.close()
