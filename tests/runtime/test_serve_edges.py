"""`serve` and Telegram's edges (issue 11): the start-up check runs before the first update, and a
user blocking the bot (MTProto's UpdateBotStopped, which pyrogram has no handler object for)
reaches the account, not a club."""

from __future__ import annotations

import asyncio
from datetime import datetime

from pyrogram import raw

from tests.pyrogram_offline import T0, user, wire
from tests.runtime.test_serve import BOT, SG, Telegram, drive, lifecycle_rig
from tgsync_cli.core.events import Person
from tgsync_cli.stores import open_store


def test_serve_asks_for_the_bots_status_in_every_club_before_applying_an_update(tmp_path):
    """Demoted while serve was down: the store still says admin until the start-up check."""
    store, tg = open_store("memory:"), Telegram()
    tg.members[BOT] = "member"
    store.create_club(SG, "SRG Almaty", None, {"bot_is_admin": True, "bot_present": True})
    runtime, reports = lifecycle_rig(store, tg, tmp_path / "spool.jsonl")
    runtime.engine.start()
    t, errors = drive(runtime, [lambda: runtime.request_stop("test over")])
    assert runtime.run() == 0
    t.join()
    assert not errors
    sync = store.club_by_group(SG)["sync"]
    assert (sync["bot_present"], sync["bot_is_admin"]) == (True, False)
    assert not reports[0].clubs[0].bot_is_admin  # what the operator is told at start is current


def test_a_user_blocking_the_bot_flags_their_account_and_makes_no_club(tmp_path):
    store, tg = open_store("memory:"), Telegram()
    store.upsert_user(Person(2, first_name="Ivan"), datetime(2024, 1, 1))
    runtime, _ = lifecycle_rig(store, tg, tmp_path / "spool.jsonl")
    users = {2: user(2, "Ivan")}
    update = wire(raw.types.UpdateBotStopped(user_id=2, date=T0, stopped=True, qts=1))
    asyncio.run(runtime.on_raw(None, update, users, {}))
    runtime.pipeline.start()
    runtime.pipeline.stop()
    assert store.user_by_telegram_id(2)["dm_blocked"] is True
    assert store.all_clubs() == []
    runtime.loop.close()
