"""`import-history` when Telegram refuses to answer about some candidates: each refusal is counted
with its reason, the others are still verified, and nobody unconfirmed is added."""

import json

from typer.testing import CliRunner

from tests.ops.test_history_import import CHAT, group_story, write_export
from tests.worlds import Altered, connected, play
from tgsync_cli.cli import app
from tgsync_cli.cli import ops as ops_cmd
from tgsync_cli.core.errors import AdminRequired, PeerUnknown, TelegramError
from tgsync_cli.core.events import MemberState, Person
from tgsync_cli.core.gateway import ChatMemberInfo
from tgsync_cli.stores import open_store


def test_per_candidate_refusals_are_skipped_with_their_reasons_and_the_rest_still_verified(tmp_path, monkeypatch):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    gw = play(group_story(), store)  # a plain-member bot: it must ask about each candidate
    store.close()
    refusals = {3: PeerUnknown("PEER_ID_INVALID"),
                4: AdminRequired("CHAT_ADMIN_REQUIRED"),
                5: TelegramError("Telegram says: INTERNAL_SERVER_ERROR")}

    def get_member(chat_id, user_id):
        if user_id in refusals:
            raise refusals[user_id]
        if user_id == 2:  # Bolat is still in the group
            return ChatMemberInfo(Person(2, first_name="Bolat"), MemberState("member"))
        return gw.get_member(chat_id, user_id)
    monkeypatch.setattr(ops_cmd, "GATEWAY_FACTORY",
                        lambda settings: connected(Altered(gw, get_member=get_member)))

    res = CliRunner().invoke(app, ["import-history", str(write_export(tmp_path)), "--chat", str(CHAT),
                                   "--json", "--store", uri])

    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["added"], rep["refused"], rep["skipped"], rep["already_known"]) == (1, 1, 3, 1)
    assert rep["skip_reasons"] == {
        "Telegram does not know the user to the bot": 1,
        "checking other members needs the bot to be an admin": 1,
        "Telegram error: Telegram says: INTERNAL_SERVER_ERROR": 1}
    roster = CliRunner().invoke(app, ["roster", str(CHAT), "--json", "--store", uri])
    members = {m["telegram_id"]: (m["status"], m["source"]) for m in json.loads(roster.stdout)["members"]}
    assert members == {1: ("active", "admin_import"), 2: ("active", "history_import")}
