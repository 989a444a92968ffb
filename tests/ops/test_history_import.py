"""`import-history`: a Telegram Desktop export adds exactly the members SPEC §4's rule names.

Exports are written here the way Desktop writes them (1-space indent, `date` in the exporting
computer's local time, `date_unixtime` a string, `from_id` "user<N>", service messages with
`actor_id`/`action`/`members` as display names). Telegram is the simulator's world.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from tgsync_cli import ops
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.sources.desktop_export import scan_export
from tgsync_cli.core.rules import from_unix
from tgsync_cli.core.events import Person
from tgsync_cli.core.store import Observation
from tgsync_cli.stores import open_store
from tests.worlds import Story, connected, play
from tests import worlds

BARE = 1234567890
CHAT = -(10**12 + BARE)
T0 = 1_733_000_000
LOCAL = timezone(timedelta(hours=5))
NOW = datetime(2025, 4, 1, 12, 0, 0)


def msg(n, uid, name, at):
    return {"id": n, "type": "message",
            "date": datetime.fromtimestamp(T0 + at, LOCAL).strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(T0 + at), "from": name, "from_id": uid,
            "text": "morning run?", "text_entities": [{"type": "plain", "text": "morning run?"}]}


def svc(n, uid, name, action, at, **extra):
    return {"id": n, "type": "service",
            "date": datetime.fromtimestamp(T0 + at, LOCAL).strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(T0 + at), "actor": name, "actor_id": uid, "action": action,
            "text": "", "text_entities": [], **extra}


MESSAGES = [
    svc(1, "user1", "Asel", "create_group", 0, title="Sunday Long Run", members=["Asel"]),
    msg(2, "user2", "Bolat", 60),
    svc(3, "user3", "Cyrus", "join_group_by_link", 120, inviter="Sunday Long Run"),
    msg(4, "user4", "Dariga", 180),  # wrote, then left quietly (no service message exported)
    msg(5, "user5", "Yerlan", 240),
    svc(6, "user5", "Yerlan", "remove_members", 300, members=["Yerlan"]),  # left by themself
    msg(7, "user7", "Ivan", 360),  # since banned
    msg(8, "channel1234567890", "Sunday Long Run", 420),  # posted as the group: nobody
    msg(9, "user777000", "Telegram", 480),  # stand-in
    svc(10, "user1", "Asel", "invite_members", 540, members=["Zere"]),  # Zere: a name, no id
]


def write_export(tmp_path, messages=MESSAGES, name="Sunday Long Run", id_=BARE):
    p = tmp_path / "result.json"
    p.write_text(json.dumps({"name": name, "type": "private_supergroup", "id": id_,
                             "messages": messages}, ensure_ascii=False, indent=1), encoding="utf-8")
    return p


def group_story() -> Story:
    """Telegram today: 1 owns the group, 2 and 3 are members, 4 and 5 left, 7 is banned.
    The bot is a plain member with privacy mode on, so it saw none of them write."""
    return Story({1: "creator", 2: "member", 3: "member", 4: "left", 5: "left", 7: "kicked"},
                 privacy_mode=True, chat=CHAT).bot_added(as_="member", by=1)


def roster(store):
    return worlds.roster(store, CHAT)


def test_verified_import_adds_exactly_those_telegram_confirms(tmp_path, monkeypatch):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    gw = play(group_story(), store)
    store.close()
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY", lambda settings: connected(gw))

    res = CliRunner().invoke(app, ["import-history", str(write_export(tmp_path)), "--chat", str(CHAT),
                                   "--json", "--store", uri])

    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["added"], rep["already_known"], rep["refused"], rep["skipped"]) == (2, 1, 3, 0)
    assert rep["candidates"] == 6 and rep["messages_read"] == 10 and not rep["club_created"]
    store = open_store(uri)
    assert roster(store) == {1: ("organizer", "active", "admin_import"),
                             2: ("member", "active", "history_import"),
                             3: ("member", "active", "history_import")}
    assert store.user_by_telegram_id(4) is None and store.user_by_telegram_id(7) is None
    assert store.user_by_telegram_id(2)["first_name"] == "Bolat"
    store.close()


def test_no_verify_takes_the_last_evidence_as_the_status(store, tmp_path):
    play(group_story(), store)

    rep = ops.import_history(store, None, scan_of(tmp_path, MESSAGES), CHAT, verify=False, at=NOW)

    assert (rep.added, rep.recorded_left, rep.already_known, rep.refused, rep.skipped) == (5, 1, 1, 0, 0)
    assert roster(store) == {1: ("organizer", "active", "admin_import"),
                             2: ("member", "active", "history_import"),
                             3: ("member", "active", "history_import"),
                             4: ("member", "active", "history_import"),
                             5: ("member", "left", "history_import"),  # SPEC §4: last evidence, a leave
                             7: ("member", "active", "history_import")}
    bolat = next(m for m in store.club_by_group(CHAT)["members"] if m["telegram_id"] == 2)
    assert bolat["status_at"] == from_unix(T0 + 60)  # Telegram's time of the evidence


def test_history_never_downgrades_a_known_member(store, tmp_path):
    """Bolat wrote (the bot saw it) after the export was taken; the export's last word is a leave."""
    story = Story({1: "creator", 2: "member"}, chat=CHAT).bot_added(by=1).then("message", user=2)
    play(story, store)
    old_leave = [svc(1, "user2", "Bolat", "remove_members", 0, members=["Bolat"])]

    rep = ops.import_history(store, None, scan_of(tmp_path, old_leave), CHAT, verify=False, at=NOW)

    assert rep.already_known == 1 and rep.added == 0
    assert roster(store)[2] == ("member", "active", "message_activity")


def test_a_newer_message_brings_back_a_member_recorded_as_left(store, tmp_path):
    story = (Story({1: "creator", 2: "member"}, chat=CHAT).bot_added(by=1)
             .then("message", user=2).then("leave", user=2))
    play(story, store)
    later = [msg(1, "user2", "Bolat", 10**7)]  # months after the recorded leave

    rep = ops.import_history(store, None, scan_of(tmp_path, later), CHAT, verify=False, at=NOW)

    assert rep.reactivated == 1
    assert roster(store)[2] == ("member", "active", "message_activity")  # source never overwritten


def test_a_missing_club_is_created_with_the_exports_name(tmp_path):
    uri = f"file:{tmp_path}/store"
    res = CliRunner().invoke(app, ["import-history", str(write_export(tmp_path, name="Trail Crew")),
                                   "--chat", str(CHAT), "--no-verify", "--store", uri])
    assert res.exit_code == 0, res.output
    assert "created club" in res.stdout
    store = open_store(uri)
    club = store.club_by_group(CHAT)
    assert club["name"] == "Trail Crew" and club["created_by"] is None
    assert {m["telegram_id"] for m in club["members"] if m["status"] == "active"} == {1, 2, 3, 4, 7}
    store.close()


def test_a_broken_export_is_refused_in_one_line_and_nothing_is_written(tmp_path):
    uri = f"file:{tmp_path}/store"
    broken = [msg(1, "user2", "Bolat", 0), dict(msg(2, "user3", "Cyrus", 5))]
    del broken[1]["date_unixtime"]
    res = CliRunner().invoke(app, ["import-history", str(write_export(tmp_path, broken)),
                                   "--chat", str(CHAT), "--no-verify", "--store", uri])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "message #1" in lines[0] and "date_unixtime" in lines[0]
    store = open_store(uri)
    assert store.all_clubs() == [] and store.counts()["users"] == 0
    store.close()


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    p = tmp_path / "notes.json"
    p.write_text('{"chats": {"list": []}}')
    res = CliRunner().invoke(app, ["import-history", str(p), "--chat", str(CHAT), "--no-verify",
                                   "--store", "memory:"])
    assert res.exit_code == 1
    assert "not a Telegram Desktop chat export" in res.stderr


def test_verification_without_the_bot_in_the_group_writes_nothing(store, tmp_path):
    gw = play(Story({1: "creator", 2: "member"}, chat=CHAT).bot_added(by=1).then("remove_bot"), store)
    before = roster(store)
    with pytest.raises(TgsyncError) as err:
        ops.import_history(store, gw, scan_of(tmp_path, MESSAGES), CHAT, verify=True, at=NOW)
    assert "nothing imported" in str(err.value) and "--no-verify" in str(err.value)
    assert roster(store) == before


def test_many_candidates_cost_a_handful_of_round_trips(file_store, tmp_path):
    """Bulk writes: one for accounts, one for memberships, whatever the number of writers."""
    many = [msg(i, f"user{1000 + i}", f"Runner {i}", i) for i in range(2500)]
    file_store.ops = 0
    rep = ops.import_history(file_store, None, scan_of(tmp_path, many), CHAT, verify=False, at=NOW)
    assert rep.added == 2500 and len(file_store.club_by_group(CHAT)["members"]) == 2500
    assert file_store.ops <= 10


def test_a_member_added_while_importing_appears_once(store, tmp_path):
    """Cyrus writes (and is added by the bot) between the import's read and its write."""
    play(Story({1: "creator", 3: "member"}, chat=CHAT).bot_added(by=1), store)
    club_id = store.club_by_group(CHAT)["_id"]

    class RacingWriter:
        """The store, with the bot adding Cyrus just before the import's one write."""

        def __getattr__(self, name):
            return getattr(store, name)

        def observe_many(self, club_id, observations, *args, **kwargs):
            store.observe(store.club_by_group(CHAT)["_id"], Observation(
                Person(3, first_name="Cyrus"), "active", None, NOW, "message_activity", strictly_newer=True))
            return store.observe_many(club_id, observations, *args, **kwargs)

    ops.import_history(RacingWriter(), None, scan_of(tmp_path, MESSAGES), CHAT, verify=False, at=NOW)

    ids = [m["telegram_id"] for m in store.club_by_group(CHAT)["members"]]
    assert sorted(ids) == [1, 2, 3, 4, 5, 7]  # 5's last evidence is a leave: recorded as left
    # the export's message is earlier evidence than the bot's sighting: SPEC §2 names its route
    assert roster(store)[3] == ("member", "active", "history_import")
    assert roster(store)[2] == ("member", "active", "history_import")


def test_the_export_of_another_chat_is_refused_unless_forced(store, tmp_path):
    with pytest.raises(TgsyncError, match="the export is of chat -1000000000042 .*pass --force"):
        ops.import_history(store, None, scan_of(tmp_path, MESSAGES, id_=42), CHAT, verify=False, at=NOW)
    assert store.club_by_group(CHAT) is None  # nothing written, no club made

    rep = ops.import_history(store, None, scan_of(tmp_path, MESSAGES, id_=42), CHAT, verify=False, at=NOW,
                             force=True)
    assert rep.added == 6
    assert rep.notes == [f"the export is of chat {-(10**12 + 42)}; imported into {CHAT} because of --force"]


def scan_of(tmp_path, messages, id_=BARE):
    return scan_export(write_export(tmp_path, messages, id_=id_))


def test_an_admin_bot_verifies_against_one_listing_not_one_call_per_candidate(store, tmp_path):
    """Telegram answers get_member only about users the bot has met; a listing names everyone."""
    story = Story({1: "creator", 2: "member", 3: "member", 4: "left", 5: "left", 7: "kicked"},
                  chat=CHAT).bot_added(as_="administrator", by=1)
    gw = play(story, store)
    gw.calls.clear()

    rep = ops.import_history(store, gw, scan_of(tmp_path, MESSAGES), CHAT, verify=True, at=NOW)

    assert (rep.added, rep.already_known, rep.refused, rep.skipped) == (2, 1, 3, 0)
    assert "get_member" not in gw.calls and gw.calls.count("iter_member_pages") == 1
    assert roster(store)[2] == ("member", "active", "history_import")


def test_an_import_that_creates_the_club_also_imports_its_organizers(tmp_path):
    """SPEC §3: whatever creates a club imports its admins — an export of a group whose bot was
    added while nothing was listening included. Only the owner (1) is an admin here."""
    telegram_side = open_store("memory:")
    gw = play(group_story(), telegram_side)  # Telegram as it is today; this store is not ours
    ours = open_store(f"file:{tmp_path}/ours")

    rep = ops.import_history(ours, gw, scan_of(tmp_path, MESSAGES), CHAT, verify=True, at=NOW)

    assert rep.club_created and rep.organizers == 1
    members = roster(ours)
    assert members[1][:2] == ("organizer", "active")  # the owner is an organizer, not a plain member
    assert {t for t, (_, status, _) in members.items() if status == "active"} == {1, 2, 3}
    ours.close()
    telegram_side.close()
