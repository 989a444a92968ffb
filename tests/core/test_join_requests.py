"""Join requests under a club's join policy: under `roster` the app's roster decides who gets in;
under `open` (the default) they are the admins' to answer, as before."""

from datetime import timedelta

from tests.worlds import CHAT, START, Story, play
from tgsync_cli.core.errors import AdminRequired, AlreadyParticipant, JoinRequestMissing
from tgsync_cli.stores import open_store

LINK = f"https://t.me/club_sync_bot?start=join_{CHAT}"


def roster_club(**kw) -> Story:
    """Asel's group (Bolat writes, so he is on the roster), the bot an admin, policy roster."""
    return (Story({1: "creator", 2: "member"}, **kw).bot_added()
            .then("message", user=2, text="hi").then("policy", join="roster", by=1))


def private(outcome_or_gw, uid):
    sent = outcome_or_gw.sent
    return [(s["chat"], s["text"], s["buttons"]) if isinstance(s, dict) else (s.chat, s.text, s.buttons)
            for s in sent if (s["chat"] if isinstance(s, dict) else s.chat) == uid]


def test_a_stranger_asking_to_join_gets_the_registration_button_and_waits(tmp_path):
    story = roster_club().then("request_join", user=5)
    store = open_store("memory:")
    gw = play(story, store)
    [(_, text, buttons)] = private(gw, 5)
    assert buttons == (LINK,) and "register" in text
    assert 5 in gw.world.chat(CHAT).requests  # left pending, never declined by the bot
    assert gw.world.chat(CHAT).state(5).status == "left"
    club = store.club_by_group(CHAT)
    assert store.member(club["_id"], 5) is None
    [req] = store.requests_of(club["_id"], telegram_id=5)
    assert (req["action"], req["state"]) == ("approve", "waiting")


def test_registering_while_the_request_is_pending_lets_them_in_as_a_member(tmp_path):
    outcome = (roster_club().then("request_join", user=5)
               .then("start", minutes=2, user=5, payload=f"join_{CHAT}").run(tmp_path))
    # registered (their account), and a member by the join Telegram sent for the approval
    assert outcome.member(5) == ("member", "active", "chat_member_event")
    assert outcome.account(5) is not None
    assert "is approved" in private(outcome, 5)[-1][1]
    [req] = outcome.store.requests_of(club_id=outcome.store.club_by_group(CHAT)["_id"], telegram_id=5)
    assert (req["state"], req["outcome"], req["done_by"]) == ("done", "approved", 5)
    # the join Telegram sends after the approval came through the usual member events
    log = outcome.store.membership_log(telegram_id=5)
    assert [e["to"]["status"] for e in log] == ["active"]


def test_an_active_member_of_the_club_is_approved_at_once_with_no_message(tmp_path):
    """Bolat is on the roster (he wrote) but left the group while the bot was down: his request
    to come back is approved straight away."""
    story = (roster_club().then("bot_offline").then("leave", user=2).then("bot_online")
             .then("request_join", user=2))
    store = open_store("memory:")
    gw = play(story, store)
    assert gw.world.chat(CHAT).state(2).status == "member" and not gw.world.chat(CHAT).requests
    assert private(gw, 2) == []
    club = store.club_by_group(CHAT)
    [req] = store.requests_of(club["_id"], telegram_id=2)
    assert (req["outcome"], req["requested_by"]) == ("approved", "roster")


def test_an_app_added_member_with_that_telegram_id_is_on_the_roster():
    """The app adds people to the club itself (a paid season): a member entry with their Telegram
    id — written as text, with no status — in a shared MongoDB. Their request is approved at once."""
    import mongomock

    from tgsync_cli import app as core
    from tgsync_cli.sim.simulator import Simulator
    from tgsync_cli.stores.mongo import MongoStore

    db = mongomock.MongoClient()["ayda"]
    store = MongoStore(db, "mongodb://test/ayda")
    sim = Simulator(roster_club().scenario, lambda gw: core.make_engine(store, gw, None))
    sim.run()
    db["clubs"].update_one({"telegram_group_id": CHAT}, {"$push": {"members": {
        "user_id": "user_app1", "telegram_id": "7", "first_name": "Ivan", "role": "member"}}})
    sim.step({"at": "2025-03-02T07:00:00Z", "do": "request_join", "chat": CHAT, "user": 7})
    sim.step({"at": "2025-03-02T07:01:00Z", "do": "request_join", "chat": CHAT, "user": 5})
    assert sim.world.chat(CHAT).state(7).status == "member"  # approved: on the app's roster
    assert sim.world.chat(CHAT).state(5).status == "left" and 5 in sim.world.chat(CHAT).requests


def test_under_the_open_policy_join_requests_are_left_to_the_admins(tmp_path):
    story = (Story({1: "creator", 2: "member"}).bot_added().then("request_join", user=5))
    store = open_store("memory:")
    gw = play(story, store)
    assert 5 in gw.world.chat(CHAT).requests and private(gw, 5) == []
    assert store.requests_of() == []


def test_an_admin_declining_is_the_only_decline_and_the_button_then_says_so(tmp_path):
    story = (roster_club().then("request_join", user=5).then("decline_request", user=5, by=1)
             .then("start", user=5, payload=f"join_{CHAT}"))
    store = open_store("memory:")
    gw = play(story, store)
    assert "Join Sunday Long Run on Telegram first" in private(gw, 5)[-1][1]
    assert store.member(store.club_by_group(CHAT)["_id"], 5) is None
    [req] = store.requests_of(telegram_id=5)
    assert (req["state"], req["outcome"]) == ("done", "gone")


def test_an_admin_approving_by_hand_is_recorded_with_who_did_it(tmp_path):
    story = roster_club().then("request_join", user=5).then("approve_request", user=5, by=1)
    store = open_store("memory:")
    play(story, store)
    assert store.member(store.club_by_group(CHAT)["_id"], 5)["status"] == "active"
    [req] = store.requests_of(telegram_id=5)
    assert (req["outcome"], req["done_by"]) == ("approved", 1)


def test_decline_after_days_declines_requests_nobody_answered(tmp_path):
    story = (Story({1: "creator", 2: "member"}).bot_added()
             .then("policy", join="roster", decline_after=2, by=1)
             .then("request_join", user=5)
             .then("message", minutes=60 * 24, user=2, text="day one")
             .then("message", minutes=60 * 24 + 5, user=2, text="day two"))
    store = open_store("memory:")
    gw = play(story, store)
    assert 5 not in gw.world.chat(CHAT).requests
    [req] = store.requests_of(telegram_id=5)
    assert (req["outcome"], req["done_by"]) == ("declined", "decline-after")


def test_a_bot_without_the_right_to_add_members_says_so_and_hears_of_no_request(tmp_path):
    story = (Story({1: "creator", 2: "member"}).then("add_bot", by=1, as_="administrator",
                                                     can_invite_users=False)
             .then("policy", join="roster").then("request_join", user=5))
    store = open_store("memory:")
    gw = play(story, store)
    [welcome] = [s for s in gw.sent if s.chat == CHAT]
    assert "right to add members" in welcome.text
    assert store.requests_of() == []  # Telegram tells such a bot nothing of join requests
    try:
        gw.approve_join_request(CHAT, 5)
        raise AssertionError("approved without can_invite_users")
    except AdminRequired as exc:
        assert "CHAT_ADMIN_REQUIRED" in str(exc)


def test_telegram_refuses_approvals_as_it_does(tmp_path):
    gw = play(roster_club().then("request_join", user=5), open_store("memory:"))
    try:
        gw.approve_join_request(CHAT, 2)  # in the group already
        raise AssertionError
    except AlreadyParticipant as exc:
        assert "USER_ALREADY_PARTICIPANT" in str(exc)
    try:
        gw.approve_join_request(CHAT, 6)  # never asked
        raise AssertionError
    except JoinRequestMissing as exc:
        assert "HIDE_REQUESTER_MISSING" in str(exc)


def test_a_requester_who_never_opened_the_bot_can_be_written_to_for_five_minutes_only(tmp_path):
    gw = play(roster_club().then("request_join", user=5), open_store("memory:"))
    asked = gw.world.chat(CHAT).requests[5]
    gw.world.now = asked + timedelta(minutes=5)
    assert gw.send_private(5, "still in time") is True
    gw.world.now = asked + timedelta(minutes=5, seconds=1)
    assert gw.send_private(5, "too late") is False
    assert START < asked
