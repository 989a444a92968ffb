"""`store copy` into a store that already has the club merges member by member, on either
backend: the newer status wins whichever side holds it, the target's own members stay, and the
dry run's plan names exactly what the copy then changes."""

from datetime import datetime, timedelta

import mongomock
import pytest

from tests.stores.backends import join, leave, message
from tgsync_cli.stores import open_store
from tgsync_cli.stores.copy import copy_store
from tgsync_cli.stores.copy_merge import plan_copy
from tgsync_cli.stores.mongo import open_mongo

T = datetime(2025, 5, 1, 8)


def target(kind, tmp_path):
    if kind == "mongomock":
        return open_mongo("mongodb://localhost/merge", client=mongomock.MongoClient())
    return open_store(f"file:{tmp_path}/target")


@pytest.mark.parametrize("kind", ["sqlite", "mongomock"])
def test_the_newer_side_wins_per_member_and_the_targets_own_members_stay(kind, tmp_path):
    src = open_store(f"file:{tmp_path}/src")
    sc = src.create_club(-1001, "Sunday Long Run", None, {})[0]["_id"]
    src.observe(sc, join(1, T))
    src.observe(sc, leave(1, T + timedelta(hours=2)))        # newer here
    src.observe(sc, join(2, T + timedelta(hours=1)))
    src.observe(sc, message(4, T + timedelta(hours=1)))       # only the source has 4
    dst = target(kind, tmp_path)
    dc = dst.create_club(-1001, "Sunday Long Run (target)", None, {})[0]["_id"]
    dst.observe(dc, join(1, T))
    dst.observe(dc, join(2, T))
    dst.observe(dc, leave(2, T + timedelta(hours=3)))        # newer there
    dst.observe(dc, join(3, T))                               # only the target has 3

    plan = plan_copy(src, dst)
    club = plan.clubs[0]
    assert (club.club_id, club.new, club.added, sorted(club.updated), club.kept_target_only) == (dc, False, [4], [1], 1)
    assert "status" in club.updated[1]  # 2: the target's evidence is both newer and earlier

    copy_store(src, dst)
    got = {m["telegram_id"]: m["status"] for m in dst.club_by_id(dc)["members"]}
    assert got == {1: "left", 2: "left", 3: "active", 4: "active"}
    assert dst.club_by_group(-1001)["_id"] == dc and len(dst.all_clubs()) == 1
    again = plan_copy(src, dst).clubs[0]
    assert (again.added, again.updated) == ([], {})
