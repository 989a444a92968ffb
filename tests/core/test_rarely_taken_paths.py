"""Paths a club meets rarely, so no other story walks them: the optional welcome DM, Telegram
failing oddly during a deep link, and a group migrating into a chat that already has a club."""

import json

from typer.testing import CliRunner

from tests import botapi_updates as U
from tests.worlds import CHAT, Altered, Story, play
from tgsync_cli.cli import app
from tgsync_cli.core.errors import TelegramError
from tgsync_cli.runtime.config import load_settings


def dms(sent, user):
    return [s["text"] if isinstance(s, dict) else s.text
            for s in sent if (s["chat"] if isinstance(s, dict) else s.chat) == user]


# -- welcome DM (config bot.welcome_dm) ------------------------------------------------------------
def test_with_welcome_dm_on_a_new_member_is_greeted_once_and_only_if_they_opened_the_bot(bare, monkeypatch):
    story = (Story().bot_added()
             .then("start", user=5).then("join", user=5)       # opened the bot: can be written to
             .then("join", user=6)                             # never did: Telegram refuses, no error
             .then("leave", user=5).then("join", user=5)       # back again: already greeted
             .then("message", user=2))                         # a writer is not a joiner
    path = story.write(bare)
    monkeypatch.setenv("TGSYNC_BOT_WELCOME_DM", "true")
    res = CliRunner().invoke(app, ["simulate", str(path), "--json", "--store", "memory:"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert dms(out["sent"], 5) == ["Hi! Open the registration button in your club's Telegram group "
                                   "to join it on Ayda Run.",
                                   "Welcome to Sunday Long Run on Ayda Run!"]
    assert dms(out["sent"], 6) == [] and dms(out["sent"], 2) == []
    members = {m["telegram_id"]: m["status"] for m in out["clubs"][0]["members"]}
    assert members[5] == members[6] == "active"


def test_without_welcome_dm_nobody_is_written_to(bare):
    story = Story().bot_added().then("start", user=5).then("join", user=5)
    res = CliRunner().invoke(app, ["simulate", str(story.write(bare)), "--json", "--store", "memory:"])
    assert dms(json.loads(res.stdout)["sent"], 5) == [
        "Hi! Open the registration button in your club's Telegram group to join it on Ayda Run."]


def test_a_welcome_dm_telegram_refuses_is_not_an_error(store):
    settings = load_settings(env={"TGSYNC_BOT_WELCOME_DM": "true"})
    refused = TelegramError("bot was blocked by the user (USER_IS_BLOCKED)")
    gw = play(Story().bot_added().then("join", user=5).then("join", user=6), store,
              wrap=lambda gw: Altered(gw, send_private=refused), settings=settings)
    members = {m["telegram_id"]: m["status"] for m in store.club_by_group(CHAT)["members"]}
    assert members[5] == members[6] == "active"
    assert [s for s in gw.sent if s.chat in (5, 6)] == []


# -- deep link: Telegram fails in a way it has no name for -------------------------------------------
def test_a_deep_link_telegram_cannot_check_gets_a_try_again_reply_and_changes_nothing(store):
    odd = TelegramError("Telegram says: INTERNAL_SERVER_ERROR")
    gw = play(Story().bot_added().then("start", user=3, payload=f"join_{CHAT}"), store,
              wrap=lambda gw: Altered(gw, get_member=odd))
    assert dms(gw.sent, 3) == ["I could not check your membership right now. Please try again later."]
    assert 3 not in {m["telegram_id"] for m in store.club_by_group(CHAT)["members"]}
    assert store.user_by_telegram_id(3) is None


# -- migration into a chat that already has a club --------------------------------------------------
T = 1_735_000_000
OLD = {"id": -4001, "type": "group", "title": "Morning Tempo"}
NEW = U.CHAT  # a supergroup


def in_chat(update, chat):
    body = update.get("message") or update.get("my_chat_member") or update["chat_member"]
    body["chat"] = chat
    return update


def test_a_group_migrating_into_a_chat_that_already_has_a_club_keeps_both_and_says_so(tmp_path):
    """Updates of two chats are not ordered: the bot's admin event in the new supergroup (which
    creates its club) can arrive before the basic group's migration messages."""
    updates = [
        in_chat(U.bot_added(T, status="member", uid=1), OLD),
        in_chat(U.message(T + 1, 5, update_id=2), OLD),
        in_chat(U.bot_added(T + 2, status="administrator", uid=3), NEW),
        in_chat(U.message(T + 3, 6, update_id=4), NEW),
        in_chat(U.message(T + 4, 1, update_id=5, migrate_to_chat_id=NEW["id"]), OLD),
        in_chat(U.message(T + 4, None, update_id=6, sender_chat=NEW, migrate_from_chat_id=OLD["id"]), NEW),
        in_chat(U.message(T + 5, 7, update_id=7), NEW),
    ]
    f = tmp_path / "updates.jsonl"
    f.write_text("".join(json.dumps(u) + "\n" for u in updates))
    store = f"file:{tmp_path}/store"
    res = CliRunner().invoke(app, ["replay", str(f), "--json", "--store", store])
    assert res.exit_code == 0, res.output
    assert any(f"{OLD['id']} migrated to {NEW['id']}, which already has a club" in note
               for note in json.loads(res.stdout)["skipped"])

    def roster(chat):
        out = CliRunner().invoke(app, ["roster", str(chat["id"]), "--json", "--store", store])
        assert out.exit_code == 0, out.output
        return {m["telegram_id"]: m["status"] for m in json.loads(out.stdout)["members"]}
    clubs = json.loads(CliRunner().invoke(app, ["clubs", "--json", "--store", store]).stdout)
    assert sorted(c["telegram_group_id"] for c in clubs) == [NEW["id"], OLD["id"]]
    assert roster(OLD) == {5: "active"}
    assert roster(NEW) == {6: "active", 7: "active"}


# -- the bot leaves a group that never had a club --------------------------------------------------
def test_the_bot_removed_from_a_group_without_a_club_creates_nothing(tmp_path):
    """Its arrival was lost (an outage); the removal alone must not make a club appear."""
    removed = U.bot_added(T, status="left")
    removed["my_chat_member"]["old_chat_member"]["status"] = "member"
    f = tmp_path / "updates.jsonl"
    f.write_text(json.dumps(removed) + "\n")
    store = f"file:{tmp_path}/store"
    res = CliRunner().invoke(app, ["replay", str(f), "--json", "--store", store])
    assert res.exit_code == 0, res.output
    assert json.loads(CliRunner().invoke(app, ["clubs", "--json", "--store", store]).stdout) == []
