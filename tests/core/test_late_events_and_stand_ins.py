"""Stories the rules must survive: a bot-status event delivered late, and Telegram's stand-in
senders (SPEC §2), which look like people to a careless reader of an update."""

import json

from typer.testing import CliRunner

from tests import botapi_updates as U
from tests.worlds import BOT, Story
from tgsync_cli.cli import app

T = 1_735_000_000
TELEGRAM, ANONYMOUS, CHANNEL_BOT = 777000, 1087968824, 136817688


def replay(tmp_path, updates):
    """`tgsync replay` of these updates, then what `clubs --json` and `roster --json` show."""
    f = tmp_path / "updates.jsonl"
    f.write_text("".join(json.dumps(u) + "\n" for u in updates))
    store = f"file:{tmp_path}/store"
    res = CliRunner().invoke(app, ["replay", str(f), "--store", store])
    assert res.exit_code == 0, res.output
    clubs = json.loads(CliRunner().invoke(app, ["clubs", "--json", "--store", store]).stdout)
    roster = CliRunner().invoke(app, ["roster", str(U.CHAT["id"]), "--json", "--store", store])
    members = {m["telegram_id"]: (m["role"], m["status"], m["source"])
               for m in json.loads(roster.stdout)["members"]}
    return clubs, members


def bot_status(date, old, new, update_id):
    upd = U.bot_added(date, status=new, uid=update_id)
    upd["my_chat_member"]["old_chat_member"]["status"] = old
    return upd


def test_a_late_bot_added_event_does_not_bring_back_a_bot_removed_after_it(tmp_path):
    """Added at t, removed at t+10; the promotion that happened at t+5 arrives last."""
    clubs, _ = replay(tmp_path, [bot_status(T, "left", "member", 1),
                                 bot_status(T + 10, "member", "left", 2),
                                 bot_status(T + 5, "member", "administrator", 3)])
    [club] = clubs
    assert club["sync"]["bot_present"] is False
    assert club["sync"]["bot_is_admin"] is False


def test_a_late_bot_removed_event_does_not_remove_a_bot_added_back_after_it(tmp_path):
    clubs, _ = replay(tmp_path, [bot_status(T, "left", "administrator", 1),
                                 bot_status(T + 10, "left", "administrator", 2),
                                 bot_status(T + 5, "administrator", "left", 3)])
    assert clubs[0]["sync"]["bot_present"] is True and clubs[0]["sync"]["bot_is_admin"] is True


def test_stand_in_senders_never_become_members_whatever_route_they_arrive_by(tmp_path):
    """Telegram (777000, is_bot false) and @Channel_Bot write in the group and even show up in
    the member listing; the anonymous admin posts on the group's behalf. Only people count."""
    story = Story({1: "creator", 2: "member", TELEGRAM: "member"}, extra_users=[
        {"id": TELEGRAM, "first_name": "Telegram", "is_bot": False},
        {"id": CHANNEL_BOT, "first_name": "Channel", "username": "Channel_Bot", "is_bot": True}])
    out = (story.bot_added(as_="administrator")
           .then("message", user=TELEGRAM, text="Club news: the Sunday run moves to 8:00")
           .then("message", user=CHANNEL_BOT, text="posted as a channel")
           .then("anonymous_message", text="from the admins")
           .then("message", user=2, text="see you there")
           .then("import_members").then("reconcile")
           .run(tmp_path))
    assert out.roster() == {1: ("organizer", "active", "admin_import"),
                            2: ("member", "active", "message_activity")}
    for tid in (TELEGRAM, CHANNEL_BOT, ANONYMOUS, BOT):
        assert out.account(tid) is None
    # the reconcile counted Telegram's answer without the stand-in as a missing member
    assert out.club()["sync"]["total_members_ayda"] == 2


def test_a_person_posting_on_behalf_of_a_chat_is_not_that_person_s_activity(tmp_path):
    """With `sender_chat` set, the message is the chat's, whoever Telegram names in `from`."""
    as_group = U.message(T + 5, 7, update_id=21, sender_chat=U.CHAT)
    as_channel = U.message(T + 6, 8, update_id=22,
                           sender_chat={"id": -1001999, "type": "channel", "title": "Club news"})
    service = U.message(T + 7, TELEGRAM, update_id=23, text="Club news repost")
    _, roster = replay(tmp_path, [U.bot_added(T, status="member"), as_group, as_channel, service,
                                  U.message(T + 8, 9, update_id=24)])
    assert roster == {9: ("member", "active", "message_activity")}
