"""pyrogram writes every peer an update names into its session, every time; serve's session
skips the writes of peers it holds unchanged, and still records every change."""

from __future__ import annotations

import asyncio
import tempfile

from pyrogram import raw

from tgsync_cli.runtime.peer_memo import PeerMemo
from tgsync_cli.runtime.telegram_client import make_client


def runner(username: str, access_hash: int = 77) -> raw.types.User:
    return raw.types.User(id=1_000_123, access_hash=access_hash, first_name="Aru", username=username)


def club() -> raw.types.Channel:
    return raw.types.Channel(id=555, title="Sunday Long Run", photo=raw.types.ChatPhotoEmpty(), date=0,
                             access_hash=99, megagroup=True, username="sunday_run")


def session_with_memo(limit: int = 100_000):
    loop = asyncio.new_event_loop()
    client = make_client(1, "0" * 32, f"9000:{'A' * 35}", tempfile.mkdtemp(), in_memory=True, loop=loop)
    loop.run_until_complete(client.storage.open())
    writes: list = []
    client.storage.conn.set_trace_callback(lambda sql: writes.append(sql) if sql.startswith(("REPLACE", "DELETE"))
                                           else None)
    memo = PeerMemo(client.storage, limit=limit)
    return loop, client, writes, memo


def test_a_runner_writing_again_costs_no_session_write_and_a_new_username_is_still_recorded():
    loop, client, writes, memo = session_with_memo()
    loop.run_until_complete(client.fetch_peers([runner("aru_runs")]))
    loop.run_until_complete(client.fetch_peers([club()]))
    first = len(writes)  # the runner and the club, each with its username
    assert first >= 4
    for _ in range(2):  # two more messages from the same runner in the same group
        loop.run_until_complete(client.fetch_peers([runner("aru_runs")]))
        loop.run_until_complete(client.fetch_peers([club()]))
    assert len(writes) == first
    loop.run_until_complete(client.fetch_peers([runner("aru_trails")]))  # she renamed herself
    peer = loop.run_until_complete(client.storage.get_peer_by_username("aru_trails"))
    assert peer.user_id == 1_000_123
    loop.run_until_complete(client.fetch_peers([runner("aru_trails", access_hash=78)]))  # a new hash
    peer = loop.run_until_complete(client.storage.get_peer_by_id(1_000_123))
    assert peer.access_hash == 78
    loop.run_until_complete(client.storage.close())
    loop.close()


def test_the_memory_is_bounded_and_starting_over_only_costs_writes():
    loop, client, writes, memo = session_with_memo(limit=2)
    people = [raw.types.User(id=1_000 + i, access_hash=i + 1, first_name="R") for i in range(5)]
    for person in people * 2:
        loop.run_until_complete(client.fetch_peers([person]))
    assert len(memo._peers) <= 2
    for person in people:  # every one of them still resolvable from the session
        assert loop.run_until_complete(client.storage.get_peer_by_id(person.id)).access_hash == person.access_hash
    loop.run_until_complete(client.storage.close())
    loop.close()
