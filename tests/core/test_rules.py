"""One story per rule of SPEC §3: given a group, when this happens, the roster shows that."""

from tests.worlds import BOT, CHAT, Story


def test_bot_added_as_admin_creates_the_club_and_imports_its_organizers(tmp_path):
    out = Story({1: "creator", 2: "administrator", 3: "member"}).bot_added(by=1).run(tmp_path)
    club = out.club()
    assert club["name"] == "Sunday Long Run"
    assert out.roster() == {1: ("organizer", "active", "admin_import"),
                            2: ("organizer", "active", "admin_import")}
    assert club["sync"]["bot_is_admin"] is True and club["sync"]["bot_present"] is True
    creator = out.account(1)
    assert out.store.club_by_group(CHAT)["created_by"] == creator["_id"]


def test_bot_added_posts_one_welcome_with_the_registration_button(tmp_path):
    out = (Story().bot_added(as_="member").then("promote_bot").then("demote_bot")
           .then("promote_bot").run(tmp_path))
    welcomes = [s for s in out.sent if s["chat"] == CHAT]
    assert len(welcomes) == 1
    assert welcomes[0]["buttons"] == [f"https://t.me/club_sync_bot?start=join_{CHAT}"]
    assert "admin" in welcomes[0]["text"]  # not an admin yet: says which routes need rights


def test_admin_bot_welcome_does_not_ask_for_rights(tmp_path):
    out = Story().bot_added(as_="administrator").run(tmp_path)
    assert "Make me an admin" not in out.sent[0]["text"]


def test_bots_in_the_admin_list_never_become_members(tmp_path):
    story = Story({1: "creator", 9: "administrator"},
                  extra_users=[{"id": 9, "first_name": "Helper", "is_bot": True}])
    out = story.bot_added().then("import_members").run(tmp_path)
    assert out.roster() == {1: ("organizer", "active", "admin_import")}
    assert out.account(9) is None and out.account(BOT) is None


def test_bot_removed_keeps_club_and_members(tmp_path):
    out = Story().bot_added().then("remove_bot").run(tmp_path)
    assert out.member(1) == ("organizer", "active", "admin_import")
    assert out.club()["sync"]["bot_present"] is False
    assert out.club()["sync"]["bot_is_admin"] is False


def test_member_events_follow_telegram_for_status_and_role(tmp_path):
    out = (Story().bot_added()
           .then("join", user=5).then("promote", user=5)
           .then("message", user=2).then("promote", user=2).then("demote", user=2)
           .then("leave", user=3).then("kick", user=4, by=1)
           .run(tmp_path))
    assert out.member(5) == ("organizer", "active", "chat_member_event")
    assert out.member(2) == ("member", "active", "message_activity")
    assert out.member(4) is None  # never known: a kick creates nothing
    assert out.member(3) is None


def test_leave_and_kick_of_known_members(tmp_path):
    out = (Story().bot_added().then("message", user=2).then("message", user=3)
           .then("leave", user=2).then("kick", user=3, by=1).run(tmp_path))
    assert out.member(2) == ("member", "left", "message_activity")
    assert out.member(3) == ("member", "kicked", "message_activity")


def test_leave_of_someone_never_seen_creates_no_account_or_record(tmp_path):
    out = Story().bot_added().then("leave", user=3).then("kick", user=4, by=1).run(tmp_path)
    assert out.member(3) is None and out.member(4) is None
    assert out.account(3) is None and out.account(4) is None


def test_message_from_an_unknown_writer_adds_a_member(tmp_path):
    out = Story().bot_added(as_="member").then("message", user=3, text="hi").run(tmp_path)
    assert out.member(3) == ("member", "active", "message_activity")
    assert out.account(3)["first_name"] == "Cyrus"


def test_message_never_changes_a_role(tmp_path):
    out = Story().bot_added().then("message", user=1).run(tmp_path)
    assert out.member(1) == ("organizer", "active", "admin_import")


def test_privacy_mode_hides_messages_from_a_non_admin_bot(tmp_path):
    out = Story(privacy_mode=True).bot_added(as_="member").then("message", user=3, text="hi").run(tmp_path)
    assert out.member(3) is None


def test_privacy_mode_still_delivers_commands_addressed_to_the_bot(tmp_path):
    out = Story(privacy_mode=True).bot_added(as_="member").then(
        "message", user=3, text="/stats@club_sync_bot").run(tmp_path)
    assert out.member(3) == ("member", "active", "message_activity")


def test_admin_bot_sees_messages_whatever_the_privacy_mode(tmp_path):
    out = Story(privacy_mode=True).bot_added(as_="administrator").then("message", user=3).run(tmp_path)
    assert out.member(3) == ("member", "active", "message_activity")


def test_anonymous_admins_and_stand_in_senders_never_become_members(tmp_path):
    out = Story().bot_added(as_="member").then("anonymous_message", text="from the admins").run(tmp_path)
    assert set(out.roster()) == {1}
    assert out.account(1087968824) is None


def test_a_message_reactivates_a_member_recorded_as_left(tmp_path):
    out = (Story().bot_added(as_="member").then("message", user=3).then("leave", user=3)
           .then("join", user=3).then("message", user=3).run(tmp_path))
    assert out.member(3) == ("member", "active", "message_activity")


def test_service_messages_track_joins_and_leaves_while_bot_is_not_admin(tmp_path):
    out = (Story().bot_added(as_="member").then("join", user=5).then("join", user=6)
           .then("leave", user=6).then("kick", user=5, by=1).run(tmp_path))
    assert out.member(5) == ("member", "kicked", "service_message")
    assert out.member(6) == ("member", "left", "service_message")


def test_admin_bot_uses_member_events_not_service_messages(tmp_path):
    out = Story().bot_added().then("join", user=5).run(tmp_path)
    assert out.member(5) == ("member", "active", "chat_member_event")


def test_member_events_are_not_delivered_to_a_non_admin_bot(tmp_path):
    out = Story().bot_added(as_="member").then("promote", user=3).run(tmp_path)
    assert out.member(3) is None


def test_deep_link_registers_a_confirmed_member(tmp_path):
    out = (Story().bot_added().then("start", user=3, payload=f"join_{CHAT}")
           .then("start", user=3, payload=f"join_{CHAT}").run(tmp_path))
    assert out.member(3) == ("member", "active", "manual_registration")
    replies = [s["text"] for s in out.sent if s["chat"] == 3]
    assert len(replies) == 2 and "registered" in replies[0] and "already" in replies[1]


def test_deep_link_refuses_non_members_unknown_clubs_and_malformed_payloads(tmp_path):
    out = (Story().bot_added()
           .then("start", user=5, payload=f"join_{CHAT}")
           .then("start", user=6, payload="join_-4242")
           .then("start", user=7, payload="join_1; drop")
           .then("start", user=8, payload="join_" + "9" * 21)
           .run(tmp_path))
    assert set(out.roster()) == {1}
    replies = {uid: [s["text"] for s in out.sent if s["chat"] == uid] for uid in (5, 6, 7, 8)}
    assert replies == {
        5: ["Join Sunday Long Run on Telegram first, then press the button again."],
        6: ["This group is not registered with Ayda Run. Ask an organizer to add the bot."],
        7: ["This link is not a valid club invitation. Use the button in your club's group."],
        8: ["This link is not a valid club invitation. Use the button in your club's group."]}
    assert all(out.account(uid) is None for uid in (5, 6, 7, 8))


def test_deep_link_after_the_bot_was_removed_is_refused_clearly(tmp_path):
    out = Story().bot_added().then("remove_bot").then("start", user=3, payload=f"join_{CHAT}").run(tmp_path)
    assert out.member(3) is None
    assert "no longer" in [s for s in out.sent if s["chat"] == 3][0]["text"]


def test_migration_keeps_the_club_and_old_deep_links_work(tmp_path):
    story = Story({1: "creator", 2: "member", 3: "member"}, chat_type="group", chat=-1500)
    out = (story.bot_added().then("message", user=2).then("migrate", to=-1009999)
           .then("message", chat=-1009999, user=2).then("start", user=3, payload="join_-1500")
           .run(tmp_path))
    assert out.club(-1500) is None
    assert out.roster(-1009999) == {1: ("organizer", "active", "admin_import"),
                                    2: ("member", "active", "message_activity"),
                                    3: ("member", "active", "manual_registration")}
    assert len(out.clubs) == 1


def test_reconcile_adds_the_missing_and_marks_the_vanished_after_an_outage(tmp_path):
    # one of four active members left: 25 %, over the mass-departure line, hence "yes"
    out = (Story().bot_added().then("message", user=2).then("bot_offline")
           .then("join", user=5).then("leave", user=2).then("bot_online")
           .then("reconcile", yes=True).run(tmp_path))
    assert out.member(5) == ("member", "active", "member_import")
    assert out.member(2) == ("member", "left", "message_activity")
    assert out.member(3) == ("member", "active", "member_import")
    sync = out.club()["sync"]
    assert sync["total_members_telegram"] == 5  # four people and the bot
    assert sync["total_members_ayda"] == 4 and sync["drift"] == 0


def test_reconcile_without_admin_rights_counts_only(tmp_path):
    out = Story().bot_added(as_="member").then("reconcile").run(tmp_path)
    assert set(out.roster()) == {1}
    assert out.club()["sync"]["total_members_telegram"] == 5
    assert out.club()["sync"]["drift"] == 3


def test_import_members_needs_admin_rights_and_reports_the_refusal(tmp_path):
    out = Story().bot_added(as_="member").then("import_members").run(tmp_path)
    assert set(out.roster()) == {1}
    assert any("admin" in n for n in out.result.notes)


def test_restart_loses_caches_not_the_roster(tmp_path):
    out = (Story().bot_added().then("message", user=2).then("restart_bot")
           .then("message", user=2).then("leave", user=2).run(tmp_path))
    assert out.member(2) == ("member", "left", "message_activity")


def test_source_is_never_overwritten(tmp_path):
    out = (Story().bot_added(as_="member").then("message", user=3).then("promote_bot")
           .then("import_members").then("start", user=3, payload=f"join_{CHAT}").run(tmp_path))
    assert out.member(3) == ("member", "active", "message_activity")


def test_after_a_restart_replies_still_name_the_club(tmp_path):
    out = (Story().bot_added().then("restart_bot")
           .then("start", user=3, payload=f"join_{CHAT}").run(tmp_path))
    assert "Sunday Long Run" in [s for s in out.sent if s["chat"] == 3][0]["text"]


def test_a_scenario_may_carry_notes_and_list_the_bot_among_members(tmp_path):
    story = Story()
    story.scenario["chats"][0]["members"].append({"user": BOT, "status": "member"})
    story.then("promote_bot", note="the organizer finally grants rights").then("join", user=5)
    out = story.run(tmp_path)
    assert out.member(1) == ("organizer", "active", "admin_import")  # promotion imports admins
    assert out.member(5) == ("member", "active", "chat_member_event")


def test_reconcile_forgets_departure_records_older_than_a_week(tmp_path):
    story = Story().bot_added().then("leave", user=3).then("reconcile", minutes=60 * 24 * 8)
    out = story.run(tmp_path)
    assert out.store.forget_preview(3)["departures"] == 0
    fresh = Story().bot_added().then("leave", user=3).then("reconcile", minutes=60).run(tmp_path)
    assert fresh.store.forget_preview(3)["departures"] == 1  # still bridging
