"""Who gets in through the deep link (SPEC §3 route 2): only someone Telegram confirms is an
active member of the club's group — now, in the group as it is now. Everyone else gets a clear
reply, and the store is exactly as it would be had they never pressed the button."""


from tgsync_cli.sim.faults import snapshot
from tests.worlds import CHAT, Story

OLD_GROUP, SUPERGROUP, OTHER = -1500, -1001600, -1002600


def replies(outcome, uid):
    return [s["text"] for s in outcome.sent if s["chat"] == uid]


def pressing(story_fn, tmp_path, uid, payload, times=1):
    """Run the story without and with `uid` opening the link: (outcome, store unchanged?)."""
    base = story_fn()
    (tmp_path / "without").mkdir()
    (tmp_path / "with").mkdir()
    without = base.run(tmp_path / "without")
    pressed = story_fn()
    for _ in range(times):
        pressed.then("start", user=uid, payload=payload)
    outcome = pressed.run(tmp_path / "with")
    return outcome, snapshot(outcome.store) == snapshot(without.store)


def group(**statuses):
    def story():
        members = {1: "creator", 2: "member", **{int(k[1:]): v for k, v in statuses.items()}}
        return Story(members, privacy_mode=True).bot_added(as_="member")
    return story


def test_a_member_of_the_group_is_registered_once_however_often_they_press(tmp_path):
    outcome, unchanged = pressing(group(), tmp_path, 2, f"join_{CHAT}", times=2)
    assert not unchanged
    assert outcome.member(2) == ("member", "active", "manual_registration")
    assert [m["telegram_id"] for m in outcome.club()["members"]].count(2) == 1
    assert replies(outcome, 2) == ["Welcome! You are now registered in Sunday Long Run on Ayda Run.",
                                   "You are already registered in Sunday Long Run."]


def test_someone_who_never_joined_the_group_is_refused_and_nothing_is_stored(tmp_path):
    outcome, unchanged = pressing(group(), tmp_path, 5, f"join_{CHAT}")
    assert unchanged and outcome.member(5) is None and outcome.account(5) is None
    assert replies(outcome, 5) == ["Join Sunday Long Run on Telegram first, then press the button again."]


def test_a_banned_user_is_refused(tmp_path):
    outcome, unchanged = pressing(group(u5="kicked"), tmp_path, 5, f"join_{CHAT}")
    assert unchanged and outcome.member(5) is None
    assert "Join Sunday Long Run on Telegram first" in replies(outcome, 5)[0]


def test_someone_who_left_is_refused_and_stays_left(tmp_path):
    def story():
        s = group(u3="member")()
        s.scenario["bot"]["privacy_mode"] = False  # so the bot sees Cyrus write
        return s.then("message", user=3, text="bye all").then("leave", user=3)

    outcome, unchanged = pressing(story, tmp_path, 3, f"join_{CHAT}")
    assert unchanged and outcome.member(3) == ("member", "left", "message_activity")
    assert "Join Sunday Long Run on Telegram first" in replies(outcome, 3)[0]


def test_a_restricted_user_counts_only_while_still_a_member(tmp_path):
    def story(is_member):
        def build():
            s = group(u5="restricted", u6="restricted")()
            for m in s.scenario["chats"][0]["members"]:
                if m["user"] == 5:
                    m["is_member"] = is_member
            return s
        return build

    (tmp_path / "out").mkdir()
    (tmp_path / "in").mkdir()
    outcome, unchanged = pressing(story(False), tmp_path / "out", 5, f"join_{CHAT}")
    assert unchanged and outcome.member(5) is None
    outcome, unchanged = pressing(story(True), tmp_path / "in", 5, f"join_{CHAT}")
    assert outcome.member(5) == ("member", "active", "manual_registration")


def migrated(then_leave=None):
    def story():
        s = Story({1: "creator", 2: "member", 3: "member"}, chat_type="group", chat=OLD_GROUP,
                  privacy_mode=True).bot_added(as_="member").then("migrate", to=SUPERGROUP)
        if then_leave:
            s.then("leave", chat=SUPERGROUP, user=then_leave)
        return s
    return story


def test_after_a_migration_the_old_link_still_registers_into_the_same_club(tmp_path):
    outcome, _ = pressing(migrated(), tmp_path, 2, f"join_{OLD_GROUP}")
    assert outcome.club(OLD_GROUP) is None and len(outcome.clubs) == 1
    assert outcome.member(2, chat=SUPERGROUP) == ("member", "active", "manual_registration")
    assert replies(outcome, 2)[0].startswith("Welcome!")


def test_after_a_migration_the_old_link_is_checked_against_the_new_group(tmp_path):
    """Bolat left the supergroup after the migration: the old group's membership no longer counts."""
    outcome, unchanged = pressing(migrated(then_leave=2), tmp_path, 2, f"join_{OLD_GROUP}")
    assert unchanged
    assert outcome.member(2, chat=SUPERGROUP) is None
    assert "Join Sunday Long Run on Telegram first" in replies(outcome, 2)[0]


def test_after_the_bot_was_removed_the_link_is_refused_clearly_and_nothing_is_stored(tmp_path):
    def story():
        return group()().then("remove_bot", by=1)

    outcome, unchanged = pressing(story, tmp_path, 2, f"join_{CHAT}")
    assert unchanged and outcome.member(2) is None and outcome.account(2) is None
    assert replies(outcome, 2) == ["I am no longer in Sunday Long Run, so I cannot confirm your "
                                   "membership. Ask an organizer to add me back."]


def test_a_forged_link_to_another_club_the_user_is_not_in_is_refused(tmp_path):
    def story():
        s = group()()
        s.scenario["chats"].append({"id": OTHER, "type": "supergroup", "title": "Elite Squad",
                                    "members": [{"user": 1, "status": "creator"}]})
        return s.then("add_bot", chat=OTHER, by=1, as_="member")

    outcome, unchanged = pressing(story, tmp_path, 2, f"join_{OTHER}")
    assert unchanged
    assert outcome.member(2, chat=OTHER) is None
    assert replies(outcome, 2) == ["Join Elite Squad on Telegram first, then press the button again."]


def test_a_link_to_a_group_without_a_club_or_a_malformed_one_changes_nothing(tmp_path):
    for i, (payload, reply) in enumerate([
            ("join_-1009999999", "This group is not registered with Ayda Run. Ask an organizer to add the bot."),
            ("join_-1001500x", "This link is not a valid club invitation. Use the button in your club's group."),
            ("join_99999999999999999999", "This link is not a valid club invitation. Use the button in your club's group."),
            ("admin_-1001500", "This link is not a valid club invitation. Use the button in your club's group.")]):
        d = tmp_path / str(i)
        d.mkdir()
        outcome, unchanged = pressing(group(), d, 2, payload)
        assert unchanged, payload
        assert replies(outcome, 2) == [reply]
