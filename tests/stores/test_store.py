"""The store: no member twice under concurrency; round trips counted; the hot path costs none."""

import threading
from datetime import datetime, timedelta

import pytest

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.errors import ConfigError
from tgsync_cli.core.events import ChatRef, MemberState, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.stores import open_store, redact_uri
from tests.worlds import engine_with_club

CHAT = ChatRef(-100321, "supergroup", "Trail Team")
T0 = datetime(2025, 6, 1, 6, 0)


def club_with_bot(store):
    return engine_with_club(store, CHAT, T0)


def test_concurrent_writers_never_duplicate_a_member(tmp_path):
    """Eight engines (as eight processes would) see the same newcomer at once."""
    path = f"file:{tmp_path}/store"
    seed = open_store(path)
    club_with_bot(seed)
    engines = [club_with_bot(seed) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    errors = []

    def write(engine, i):
        barrier.wait()
        try:
            for uid in range(500, 510):
                engine.handle(MessageSeen(CHAT, Person(uid, first_name="N"), T0 + timedelta(seconds=i)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(e, i)) for i, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    members = seed.club_by_group(CHAT.id)["members"]
    assert sorted(m["telegram_id"] for m in members) == list(range(500, 510))
    assert seed.counts()["users"] == 10
    assert seed.counts()["clubs"] == 1


def test_a_known_members_message_costs_no_round_trip():
    store = open_store("memory:")
    engine = club_with_bot(store)
    engine.handle(MessageSeen(CHAT, Person(7, first_name="Ivan"), T0))
    before = store.ops
    for i in range(1, 100):
        engine.handle(MessageSeen(CHAT, Person(7, first_name="Ivan"), T0 + timedelta(minutes=i)))
    assert store.ops == before
    engine.flush()
    assert store.ops == before + 1  # last_seen: one bulk write
    member = store.member(store.club_by_group(CHAT.id)["_id"], 7)
    assert member["last_seen"] == T0 + timedelta(minutes=99)


def test_a_restart_warms_the_cache_with_one_query(tmp_path):
    store = open_store(f"file:{tmp_path}/s")
    engine = club_with_bot(store)
    for uid in range(100, 150):
        engine.handle(MessageSeen(CHAT, Person(uid, first_name="R"), T0))
    restarted = Engine(store, OfflineGateway(), MemoryMemberCache(), bot_id=9000)
    before = store.ops
    restarted.start()
    assert store.ops == before + 1
    for uid in range(100, 150):
        restarted.handle(MessageSeen(CHAT, Person(uid, first_name="R"), T0 + timedelta(hours=1)))
    assert store.ops == before + 1


def test_last_seen_never_moves_backwards():
    store = open_store("memory:")
    engine = club_with_bot(store)
    engine.handle(MessageSeen(CHAT, Person(7), T0 + timedelta(hours=2)))
    engine.flush()
    engine.handle(MessageSeen(CHAT, Person(7), T0 + timedelta(hours=1)))  # late delivery
    engine.flush()
    cid = store.club_by_group(CHAT.id)["_id"]
    assert store.member(cid, 7)["last_seen"] == T0 + timedelta(hours=2)


def test_the_embedded_store_keeps_data_across_opens(tmp_path):
    store = open_store(f"file:{tmp_path}/s")
    club_with_bot(store)
    store.close()
    again = open_store(f"file:{tmp_path}/s")
    assert again.club_by_group(CHAT.id)["name"] == "Trail Team"


@pytest.mark.parametrize("uri", ["postgres://x", "file:", "sqlite:///x"])
def test_bad_store_uris_are_refused_clearly(uri):
    with pytest.raises(ConfigError, match="store.uri"):
        open_store(uri)


def test_credentials_never_appear_in_a_store_label():
    assert redact_uri("mongodb://ayda:s3cret-pw@db.example:27017/x") == "mongodb://***@db.example:27017/x"


@pytest.mark.parametrize("uri", ["memory:", "file"])
def test_a_new_member_costs_one_round_trip_account_and_membership_together(uri, tmp_path):
    from tgsync_cli.core.events import MemberStatusChanged

    store = open_store(uri if uri != "file" else f"file:{tmp_path}/s")
    engine = club_with_bot(store)
    before = store.ops
    engine.handle(MessageSeen(CHAT, Person(70, first_name="New"), T0 + timedelta(minutes=1)))
    engine.handle(MemberStatusChanged(CHAT, Person(71, first_name="Joiner"), MemberState("member"),
                                      T0 + timedelta(minutes=2)))
    assert store.ops == before + 2  # one each: account upsert and guarded membership write in one transaction
    cid = store.club_by_group(CHAT.id)["_id"]
    assert store.member(cid, 70)["status"] == store.member(cid, 71)["status"] == "active"
    assert store.user_by_telegram_id(70) is not None and store.user_by_telegram_id(71) is not None
