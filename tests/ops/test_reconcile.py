"""`reconcile`: after an outage the roster equals Telegram's again, and the report says what changed.

Telegram is the simulator's world as a story left it; the store is the one the story wrote.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tgsync_cli import ops
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.core.errors import InputError, TelegramUnavailable
from tgsync_cli.core.rules import parse_iso
from tgsync_cli.sim.faults import snapshot
from tgsync_cli.stores import open_store
from tests.worlds import CHAT, Story, connected, play

LATER = parse_iso("2025-03-02T07:00:00Z")


def outage_story() -> Story:
    """The bot was offline while 5 joined, 3 left and 4 was promoted; the store missed it all.
    One of four active members left: over 20 %, so applying it takes --yes (SPEC §3)."""
    return (Story({1: "creator", 2: "member", 3: "member", 4: "member"})
            .bot_added(as_="administrator")
            .then("message", user=2).then("message", user=3).then("message", user=4)
            .then("bot_offline")
            .then("join", user=5).then("leave", user=3).then("promote", user=4)
            .then("bot_online"))


def telegram_roster(gw, chat=CHAT):
    chat_ = gw.world.chat(chat)
    return {uid for uid, s in chat_.members.items() if s.status in ("creator", "administrator", "member")}


def active_roster(store, chat=CHAT):
    return {m["telegram_id"]: (m["role"], m["status"], m["source"])
            for m in store.club_by_group(chat)["members"] if m["status"] == "active"}


def test_after_an_outage_reconcile_restores_the_roster_and_says_what_changed(store):
    gw = play(outage_story(), store)
    assert set(active_roster(store)) == {1, 2, 3, 4}  # the outage left the store behind

    out = ops.reconcile_clubs(store, gw, str(CHAT), False, LATER, threshold=0, yes=True)

    assert set(active_roster(store)) == telegram_roster(gw) == {1, 2, 4, 5}
    assert active_roster(store)[5] == ("member", "active", "member_import")
    assert active_roster(store)[4][0] == "organizer"
    club = out.clubs[0]
    assert (club.added, club.marked_left, club.role_changed) == ([5], [3], [4])
    assert club.listed and club.drift == 0 and out.exit_code == 0
    sync = store.club_by_group(CHAT)["sync"]
    assert sync["last_sync"] == LATER and sync["drift"] == 0
    assert (sync["total_members_telegram"], sync["total_members_ayda"]) == (5, 4)  # the bot counts


def test_the_simulators_reconcile_action_restores_the_roster_too(tmp_path):
    out = outage_story().then("reconcile", yes=True).run(tmp_path)
    assert {t for t, (_, status, _) in out.roster().items() if status == "active"} == {1, 2, 4, 5}
    assert out.member(3) == ("member", "left", "message_activity")


def test_without_admin_rights_reconcile_counts_only_and_says_why(store):
    gw = play(Story({1: "creator", 2: "member", 3: "member"}).bot_added(as_="member")
              .then("join", user=5), store)
    before = store.club_by_group(CHAT)["members"]

    out = ops.reconcile_clubs(store, gw, str(CHAT), False, LATER, threshold=5)

    club = out.clubs[0]
    assert not club.listed and club.added == [] and club.marked_left == []
    assert "admin" in club.reason and "cannot be listed" in club.reason
    # Telegram counts 1, 2, 3, 5 and the bot; the store knows 1 (admin) and 5 (service message)
    assert club.total_members_telegram == 5 and club.total_members_ayda == 2 and club.drift == 2
    assert store.club_by_group(CHAT)["members"] == before
    assert store.club_by_group(CHAT)["sync"]["bot_is_admin"] is False


def test_drift_over_the_threshold_exits_3_for_cron(tmp_path, monkeypatch):
    store_uri = f"file:{tmp_path}/store"
    store = open_store(store_uri)
    gw = play(Story({1: "creator", 2: "member", 3: "member"}).bot_added(as_="member"), store)
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))
    run = lambda *extra: CliRunner().invoke(app, ["reconcile", str(CHAT), "--json", "--store", store_uri, *extra])

    over = run("--threshold", "1")
    within = run("--threshold", "2")
    default = run()  # sync.reconcile_threshold defaults to 0

    assert over.exit_code == 3, over.output
    assert json.loads(over.stdout)["over_threshold"] == [CHAT]
    assert json.loads(over.stdout)["clubs"][0]["drift"] == 2
    assert within.exit_code == 0 and json.loads(within.stdout)["over_threshold"] == []
    assert default.exit_code == 3


def test_threshold_comes_from_settings_when_not_given(tmp_path, monkeypatch):
    store_uri = f"file:{tmp_path}/store"
    store = open_store(store_uri)
    gw = play(Story({1: "creator", 2: "member", 3: "member"}).bot_added(as_="member"), store)
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))
    monkeypatch.setenv("TGSYNC_SYNC_RECONCILE_THRESHOLD", "2")
    res = CliRunner().invoke(app, ["reconcile", str(CHAT), "--store", store_uri])
    assert res.exit_code == 0, res.output


def test_dry_run_writes_nothing_but_says_what_it_would_change(tmp_path, monkeypatch):
    store_uri = f"file:{tmp_path}/store"
    store = open_store(store_uri)
    gw = play(outage_story(), store)
    before = snapshot(store), store.club_by_group(CHAT)["sync"].get("last_sync")
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))

    res = CliRunner().invoke(app, ["reconcile", "--all", "--dry-run", "--json", "--store", store_uri])

    assert res.exit_code == 0, res.output
    club = json.loads(res.stdout)["clubs"][0]
    assert (club["would_add"], club["would_mark_left"]) == (1, 1)
    store = open_store(store_uri)
    assert (snapshot(store), store.club_by_group(CHAT)["sync"].get("last_sync")) == before
    store.close()


def test_all_reconciles_every_club_and_shows_a_table(tmp_path, monkeypatch):
    store_uri = f"file:{tmp_path}/store"
    store = open_store(store_uri)
    story = outage_story()
    story.scenario["chats"].append({"id": -1002, "type": "supergroup", "title": "Trail Crew",
                                    "members": [{"user": 6, "status": "creator"}]})
    story.then("add_bot", chat=-1002, by=6, as_="member")
    gw = play(story, store)
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))

    monkeypatch.setenv("COLUMNS", "200")  # not render.console.width: restoring that property pins it
    res = CliRunner().invoke(app, ["reconcile", "--all", "--yes", "--store", store_uri])

    assert res.exit_code == 0, res.output
    assert "Sunday Long Run" in res.stdout and "Trail Crew" in res.stdout
    assert "added 1: 5" in res.stdout and "marked left 1: 3" in res.stdout


def test_after_a_reconcile_roster_since_shows_only_whom_it_changed(tmp_path, monkeypatch):
    """Yesterday's cron reconcile listed everyone; then the outage. Today's reconcile confirms 1
    and 2 as they were, so their status_at stays where it was and `roster --since` today names
    only the added, the marked left and the promoted."""
    from datetime import datetime, timezone

    store_uri = f"file:{tmp_path}/store"
    store = open_store(store_uri)
    story = (Story({1: "creator", 2: "member", 3: "member", 4: "member"})
             .bot_added(as_="administrator")
             .then("message", user=2).then("message", user=3).then("message", user=4)
             .then("reconcile", yes=True)
             .then("bot_offline")
             .then("join", user=5).then("leave", user=3).then("promote", user=4)
             .then("bot_online"))
    gw = play(story, store)
    before = {m["telegram_id"]: m["status_at"] for m in store.club_by_group(CHAT)["members"]}
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))
    today = datetime.now(timezone.utc).date().isoformat()

    res = CliRunner().invoke(app, ["reconcile", str(CHAT), "--yes", "--store", store_uri])
    assert res.exit_code == 0, res.output
    roster = lambda *a: {m["telegram_id"]: m for m in json.loads(CliRunner().invoke(
        app, ["roster", str(CHAT), "--json", "--store", store_uri, *a]).stdout)["members"]}

    changed = roster("--since", today)
    assert {t: (m["role"], m["status"]) for t, m in changed.items()} == {
        3: ("member", "left"), 4: ("organizer", "active"), 5: ("member", "active")}
    everyone = roster()
    assert sorted(everyone) == [1, 2, 3, 4, 5]
    assert [parse_iso(everyone[t]["status_at"]) for t in (1, 2)] == [before[1], before[2]]


def test_one_club_telegram_cannot_answer_for_does_not_hide_the_others(store):
    gw = play(outage_story(), store)
    store.create_club(-1009, "Ghost Club", None, {})

    class Flaky:
        def __getattr__(self, name):
            return getattr(gw, name)

        def member_count(self, chat_id):
            if chat_id == -1009:
                raise TelegramUnavailable("Telegram is not reachable (counting members)")
            return gw.member_count(chat_id)

    out = ops.reconcile_clubs(store, Flaky(), None, True, LATER, yes=True)

    assert out.exit_code == 1
    assert [c.chat_id for c in out.failed] == [-1009]
    assert set(active_roster(store)) == {1, 2, 4, 5}


def test_reconcile_needs_a_chat_or_all(store):
    with pytest.raises(InputError):
        ops.reconcile_clubs(store, None, None, False, LATER)
    with pytest.raises(InputError):
        ops.reconcile_clubs(store, None, str(CHAT), True, LATER)


def test_reconcile_without_telegram_credentials_names_the_missing_key(tmp_path, monkeypatch):
    for key in ("API_ID", "API_HASH", "BOT_TOKEN"):
        monkeypatch.delenv(f"TGSYNC_TELEGRAM_{key}", raising=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["reconcile", "--all", "--store", "memory:"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: telegram.api_id is missing")
    assert len(res.stderr.strip().splitlines()) == 1



def _everything(store):
    return {name: sorted(repr(sorted(d.items())) for d in docs) for name, docs in store.export().items()}
