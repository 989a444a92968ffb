"""`replay`: Bot API updates applied offline; the roster agrees with the rules."""

import json

from typer.testing import CliRunner

from tests import botapi_updates as U
from tgsync_cli.cli import app

T = 1_735_000_000


def run(tmp_path, lines, *extra):
    f = tmp_path / "updates.jsonl"
    f.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    store = f"file:{tmp_path}/store"
    res = CliRunner().invoke(app, ["replay", str(f), "--store", store, *extra])
    roster = CliRunner().invoke(app, ["roster", str(U.CHAT["id"]), "--json", "--store", store])
    members = {}
    if roster.exit_code == 0:
        members = {m["telegram_id"]: (m["role"], m["status"], m["source"])
                   for m in json.loads(roster.stdout)["members"]}
    return res, members


def test_out_of_order_and_duplicate_updates_converge(tmp_path):
    join, leave = U.member(T + 10, 5, "left", "member"), U.member(T + 20, 5, "member", "left")
    promote = U.member(T + 30, 6, "member", "administrator")
    res, roster = run(tmp_path, [U.bot_added(T), leave, join, promote, join, leave, promote])
    assert res.exit_code == 0, res.output
    assert roster[5] == ("member", "left", "chat_member_event")
    assert roster[6] == ("organizer", "active", "chat_member_event")


def test_anonymous_admins_channel_forwards_and_bots_never_become_members(tmp_path):
    anon = U.message(T + 5, 1087968824, sender_chat=U.CHAT)
    forward = U.message(T + 6, 777000, is_automatic_forward=True,
                        sender_chat={"id": -1001999, "type": "channel", "title": "Club news"})
    other_bot = U.message(T + 7, None)
    other_bot["message"]["from"] = {"id": 4242, "is_bot": True, "first_name": "Strava"}
    channel_post = {"update_id": 50, "channel_post": {"message_id": 1, "date": T, "chat": {"id": -1001999, "type": "channel"}}}
    res, roster = run(tmp_path, [U.bot_added(T, status="member"), anon, forward, other_bot, channel_post,
                                 U.message(T + 8, 7)])
    assert res.exit_code == 0, res.output
    assert set(roster) == {7}
    assert roster[7] == ("member", "active", "message_activity")


def test_malformed_lines_are_reported_with_their_numbers_and_valid_lines_still_apply(tmp_path):
    lines = [U.bot_added(T, status="member"), "{not json", U.message(T + 1, 7),
             {"update_id": 3, "message": {"date": "yesterday", "chat": U.CHAT}},
             {"update_id": 4, "chat_member": {"chat": U.CHAT}}, U.message(T + 2, 8)]
    res, roster = run(tmp_path, lines)
    assert res.exit_code == 1
    assert "updates.jsonl:2:" in res.stderr and "updates.jsonl:4:" in res.stderr
    assert "message.date" in res.stderr and "updates.jsonl:5:" in res.stderr
    assert set(roster) == {7, 8}


def test_steps_that_need_telegram_are_reported_and_skipped(tmp_path):
    res, roster = run(tmp_path, [U.bot_added(T), U.start(T + 5, 7, f"join_{U.CHAT['id']}")], "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["applied"] == 2
    assert any("admin" in s for s in report["skipped"]) and any("member" in s for s in report["skipped"])
    assert roster == {}  # admins unknown offline; the deep link cannot be confirmed


def test_service_messages_count_whether_or_not_the_bot_is_admin(tmp_path):
    joined = U.message(T + 5, 5, new_chat_members=[U.user(5)])
    left = U.message(T + 6, 6, left_chat_member=U.user(6))
    kicked = U.message(T + 7, 1, left_chat_member=U.user(7))
    res, roster = run(tmp_path, [U.bot_added(T, status="member"), U.message(T + 1, 7), joined, left, kicked])
    assert roster == {5: ("member", "active", "service_message"), 7: ("member", "kicked", "message_activity")}
    admin_dir = tmp_path / "admin"
    admin_dir.mkdir()
    res, roster = run(admin_dir, [U.bot_added(T, status="administrator"), joined])
    # SPEC §3: applied whenever they arrive (after a demotion the bot missed, they are all it gets)
    assert roster == {5: ("member", "active", "service_message")}


def test_migration_messages_move_the_club(tmp_path):
    old = {"id": -4001, "type": "group", "title": "Old"}
    added = U.bot_added(T, status="member")
    added["my_chat_member"]["chat"] = old
    to = {"update_id": 2, "message": {"message_id": 3, "date": T + 1, "chat": old,
                                      "from": U.user(1), "migrate_to_chat_id": U.CHAT["id"]}}
    frm = {"update_id": 3, "message": {"message_id": 1, "date": T + 1, "chat": U.CHAT,
                                       "sender_chat": U.CHAT, "migrate_from_chat_id": -4001}}
    res, roster = run(tmp_path, [added, to, frm, U.message(T + 2, 7)])
    assert res.exit_code == 0, res.output
    assert roster == {7: ("member", "active", "message_activity")}
    clubs = json.loads(CliRunner().invoke(app, ["clubs", "--json", "--store", f"file:{tmp_path}/store"]).stdout)
    assert [c["telegram_group_id"] for c in clubs] == [U.CHAT["id"]]
