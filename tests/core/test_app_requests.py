"""Removals the app asks for: applied in Telegram by the bot, recorded on the request and in the
membership log with who asked, guarded, and applied exactly once whatever dies in between."""

from datetime import datetime, timedelta

from tests.worlds import CHAT, Story, play
from tgsync_cli import app as core
from tgsync_cli.core.events import RequestsDue
from tgsync_cli.core.requests import new_request
from tgsync_cli.sim.simulator import Simulator
from tgsync_cli.stores import open_store

BIG = {1: "creator", 3: "administrator", **{u: "member" for u in range(10, 30)}}


def club_of(n_members=BIG) -> Story:
    story = Story(n_members, extra_users=[{"id": u, "first_name": f"Runner {u}"} for u in range(10, 30)])
    story.bot_added()
    for u in range(10, 30):
        if u in n_members:
            story.then("message", minutes=0, user=u, text="in")
    return story


def requests(store, tid):
    return [(r["action"], r["state"], r["outcome"], r["reason"]) for r in store.requests_of(telegram_id=tid)]


def test_a_removal_is_a_ban_then_an_unban_logged_with_who_asked_and_they_may_rejoin():
    story = (club_of().then("app", action="remove", user=10, by="user_coach42")
             .then("join", user=10))
    store = open_store("memory:")
    gw = play(story, store)
    assert requests(store, 10) == [("remove", "done", "removed", None)]
    log = store.membership_log(telegram_id=10)
    changes = [(e["from"]["status"], e["to"]["status"], e["source"], e["actor"]) for e in log if e["from"]]
    assert changes[:2] == [("active", "kicked", "app_request", "user_coach42"),
                           ("kicked", "left", "app_request", "user_coach42")]
    assert changes[2][:3] == ("left", "active", "chat_member_event")  # rejoined by the open policy
    assert gw.world.chat(CHAT).state(10).status == "member"


def test_a_ban_keeps_them_out():
    story = (club_of().then("policy", join="roster", by=1)
             .then("app", action="ban", user=11, by=3).then("request_join", user=11))
    store = open_store("memory:")
    gw = play(story, store)
    assert gw.world.chat(CHAT).state(11).status == "kicked" and not gw.world.chat(CHAT).requests
    assert store.member(store.club_by_group(CHAT)["_id"], 11)["status"] == "kicked"
    assert requests(store, 11) == [("ban", "done", "banned", None)]
    # lifting the ban lets them ask again, not in
    story.then("app", action="unban", user=11, by=3).then("request_join", user=11)
    store = open_store("memory:")
    gw = play(story, store)
    assert gw.world.chat(CHAT).state(11).status == "left" and 11 in gw.world.chat(CHAT).requests
    assert store.member(store.club_by_group(CHAT)["_id"], 11)["status"] == "left"


def test_never_the_creator_the_bot_or_an_admin_unless_forced():
    story = (club_of().then("app", action="remove", user=1, by=3)
             .then("app", action="ban", user=3, by=1)
             .then("app", action="ban", user=3, by=1, force=True))
    store = open_store("memory:")
    gw = play(story, store)
    assert requests(store, 1) == [("remove", "done", "refused", "the group's creator")]
    forced = requests(store, 3)
    assert forced[0][2:] == ("refused", "an admin of the group (a request with force may name them)")
    assert forced[1][2] == "refused" and "USER_ADMIN_INVALID" in forced[1][3]  # Telegram says no
    assert gw.world.chat(CHAT).state(3).status == "administrator"


def test_someone_not_in_the_group_is_closed_with_that_reason():
    store = open_store("memory:")
    play(club_of().then("app", action="remove", user=5, by=1), store)
    assert requests(store, 5) == [("remove", "done", "not_in_group", "not in the group")]


def test_more_than_a_fifth_of_the_club_in_a_day_waits_for_yes():
    story = club_of()
    for u in range(10, 16):
        story.then("app", action="remove", user=u, by=1)
    story.then("app", action="remove", user=16, by=1, yes=True)
    store = open_store("memory:")
    gw = play(story, store)
    outcomes = [requests(store, u)[0][1:3] for u in range(10, 17)]
    removed = [u for u, o in zip(range(10, 17), outcomes) if o == ("done", "removed")]
    held = [u for u, o in zip(range(10, 17), outcomes) if o[0] == "held"]
    # 22 in the club: 4 removals are within a fifth, a fifth would be exceeded by the 5th
    assert removed == [10, 11, 12, 13, 16] and held == [14, 15]  # 16's request said yes
    assert "20%" in requests(store, 14)[0][3]
    assert gw.world.chat(CHAT).state(15).status == "member"


def test_a_request_left_by_a_serve_that_died_is_applied_once_by_the_next():
    store = open_store("memory:")
    sim = Simulator(club_of().scenario, lambda gw: core.make_engine(store, gw, None))
    sim.run()
    now = sim.world.now + timedelta(minutes=1)
    club = store.club_by_group(CHAT)
    req = store.add_request(new_request(club["_id"], 12, "remove", "app", now))
    # the first serve claimed it, banned them, and died before it could say so
    assert store.claim_request(req["_id"], "dead-serve", now, now - timedelta(minutes=2))
    sim.gateway.ban_member(CHAT, 12)
    sim.gateway.unban_member(CHAT, 12)
    sim.world.now = now
    sim._drain()
    sim.engine.handle(RequestsDue(now + timedelta(seconds=30)))  # the claim is fresh: left alone
    assert requests(store, 12)[0][1] == "applying"
    later = now + timedelta(minutes=5)
    sim.engine.handle(RequestsDue(later))
    assert requests(store, 12) == [("remove", "done", "removed", None)]
    assert store.finish_request(req["_id"], "dead-serve", {"outcome": "failed"}) is False
    bans = sim.gateway.calls.count("ban_member")
    sim.engine.handle(RequestsDue(later + timedelta(minutes=5)))
    assert sim.gateway.calls.count("ban_member") == bans  # done is done


def test_a_request_the_app_wrote_in_its_own_shapes_is_read_or_closed_never_a_crash():
    import mongomock

    from tgsync_cli.stores.mongo import MongoStore

    db = mongomock.MongoClient()["ayda"]
    store = MongoStore(db, "mongodb://test/ayda")
    sim = Simulator(club_of().scenario, lambda gw: core.make_engine(store, gw, None))
    sim.run()
    club = store.club_by_group(CHAT)
    db["requests"].insert_many([
        {"_id": "r1", "club_id": club["_id"], "telegram_id": "13", "action": "remove",
         "requested_by": "user_x", "at": "2025-03-01T08:00:00Z"},  # no state, text id and date
        {"_id": "r2", "club_id": club["_id"], "telegram_id": 14.0, "action": "expel", "at": datetime(2025, 3, 1)},
        {"_id": "r3", "club_id": club["_id"], "action": "ban"},
    ])
    sim.engine.handle(RequestsDue(datetime(2025, 3, 1, 9)))
    got = {d["_id"]: (d["state"], d.get("outcome"), d.get("reason")) for d in db["requests"].find()}
    assert got["r1"] == ("done", "removed", None)
    assert got["r2"][:2] == ("done", "refused") and "action must be one of" in got["r2"][2]
    assert got["r3"] == ("done", "refused", "telegram_id is not a user id")
    assert sim.world.chat(CHAT).state(13).status == "left"


def test_the_season_scenario_plays_as_its_expected_roster():
    import json
    from pathlib import Path

    here = Path(__file__).parent / "scenarios"
    store = open_store("memory:")
    result = core.simulate(here / "roster-gated-season.json", store)
    got = {m["telegram_id"]: m["status"] for m in result.clubs[0]["members"]}
    want = {m["telegram_id"]: m["status"]
            for m in json.loads((here / "roster-gated-season.expected.json").read_text())["clubs"][0]["members"]}
    assert got == want
    assert got[6] == "active" and got[7] == "kicked" and 8 not in got and 9 not in got
