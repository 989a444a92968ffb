"""forget erases the person from what waits to be applied, not the events they took part in:
an admin who kicked someone, or whose invite link someone used, is erased from the event, and
the kick or the join still happens."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from typer.testing import CliRunner

from tgsync_cli import ops
from tgsync_cli.cli import app
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.codec import to_dict
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.sim.faults import FaultyStore
from tgsync_cli.stores import open_store
from tests.ops.test_forget import traces

BOT, ADMIN, INVITED, WRITER = 9000, 777, 780, 781
CHAT = ChatRef(-1005550, "supergroup", "Sunday Long Run")
T = datetime(2025, 6, 1, 8, 0)


def story():
    """The admin (777) adds the bot, 780 joins by the admin's link, 781 writes, the admin kicks
    780, and writes once: all waiting in the spool (the store was down)."""
    admin = Person(ADMIN, first_name="Dana")
    return [
        BotStatusChanged(CHAT, admin, MemberState("left"), MemberState("administrator"), T,
                         Person(BOT, True, "bot", username="club_bot")),
        MemberStatusChanged(CHAT, Person(INVITED, first_name="Ilya"), MemberState("member"),
                            T + timedelta(minutes=1), actor=Person(INVITED, first_name="Ilya"),
                            old=MemberState("left"), invite_link="Dana's link", invited_by=ADMIN),
        MessageSeen(CHAT, Person(WRITER, first_name="Asel"), T + timedelta(minutes=2)),
        MemberStatusChanged(CHAT, Person(INVITED, first_name="Ilya"), MemberState("kicked"),
                            T + timedelta(minutes=3), actor=admin, old=MemberState("member")),
        MessageSeen(CHAT, admin, T + timedelta(minutes=4)),
    ]


def engine_on(uri):
    store = open_store(uri)
    engine = Engine(store, OfflineGateway(BOT), MemoryMemberCache(), bot_id=BOT)
    engine.start()
    return store, engine


def roster(store):
    club = store.club_by_group(CHAT.id)
    return {m["telegram_id"]: (m["status"], m.get("invited_by")) for m in club["members"]}


def test_the_spool_scrub_keeps_the_kick_of_someone_the_forgotten_admin_kicked(tmp_path, monkeypatch):
    uri = f"file:{tmp_path}/store"
    open_store(uri).close()
    session = tmp_path / "session"
    session.mkdir()
    spool = session / "pending-events.jsonl"
    spool.write_text("".join(json.dumps(to_dict(e)) + "\n" for e in story()))
    monkeypatch.setenv("TGSYNC_TELEGRAM_SESSION_DIR", str(session))

    res = CliRunner().invoke(app, ["forget", str(ADMIN), "--yes", "--json", "--store", uri])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["spooled_events"] == 4  # lines naming them: 2 kept, erased
    assert str(ADMIN) not in spool.read_text() and "Dana" not in spool.read_text()

    store, engine = engine_on(uri)  # the next start replays the spool
    pipe = Pipeline(engine, spool_path=str(spool), backoff=(0.01, 0.01))
    pipe.start()
    assert pipe.stop(timeout=10) == 0
    assert roster(store) == {INVITED: ("kicked", None), WRITER: ("active", None)}
    assert traces(store, {ADMIN}) == []


def test_a_running_pipeline_keeps_the_kick_when_the_kicking_admin_is_forgotten(tmp_path):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    faults = FaultyStore(store)
    engine = Engine(faults, OfflineGateway(BOT), MemoryMemberCache(), bot_id=BOT)
    engine.start()
    pipe = Pipeline(engine, spool_path=str(tmp_path / "spool.jsonl"), backoff=(0.02, 0.02),
                    forget_poll_seconds=0.02)
    pipe.start()
    faults.fail_for(3600)  # the store is down for this serve: its events wait in memory
    for event in story():
        pipe.submit(event)
    other = open_store(uri)  # forget runs in another process: only the store's note reaches us
    res = CliRunner().invoke(app, ["forget", str(ADMIN), "--yes", "--store", uri])
    assert res.exit_code == 0, res.output
    other.close()
    faults.heal()
    assert pipe.stop(timeout=10) == 0
    assert roster(store) == {INVITED: ("kicked", None), WRITER: ("active", None)}
    assert traces(store, {ADMIN}) == []


def test_a_forget_landing_just_before_serves_flush_leaves_no_trace_on_mongodb(tmp_path):
    """Given a serve on the app's MongoDB holding Asel's (781) messages for the next flush, when
    an operator's forget 781 lands after the serve last looked for forgets but before that flush,
    the flush brings nothing of hers back: the next look erases what it wrote (her activity)."""
    from tests.stores.backends import close_backend, open_backend

    store, _ = open_backend("mongomock", tmp_path)
    engine = Engine(store, OfflineGateway(BOT), MemoryMemberCache(), bot_id=BOT)
    engine.start()
    pipe = Pipeline(engine, spool_path=str(tmp_path / "spool.jsonl"), backoff=(0.02, 0.02))
    pipe.start()
    for event in story()[:3]:
        pipe.submit(event)
    pipe.submit(MessageSeen(CHAT, Person(WRITER, first_name="Asel"), T + timedelta(minutes=5)))  # held
    real_flush, landed = engine.flush, []

    def flush():
        if not landed:
            landed.append(ops.forget(store, None, WRITER))
        return real_flush()
    engine.flush = flush  # type: ignore[method-assign]
    try:
        assert pipe.stop(timeout=10) == 0
        assert landed
        assert traces(store, {WRITER}) == []
        assert roster(store)[INVITED] == ("active", ADMIN)
    finally:
        close_backend(store)
