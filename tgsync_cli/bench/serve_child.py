"""A serve-like process to kill -9: kurigram's own Client, Dispatcher and session file, tgsync's
handlers, pipeline, journal and update-state gate; Telegram is a feeder.

What is real: `pyrogram.Client` (kurigram) with tgsync's `_PrivateSQLiteStorage` session file;
`Client.handle_updates`, which saves the update state and queues each update, exactly as when
the network session hands it a packet; the Dispatcher's workers and parsers; serve's handlers
(`Runtime.on_message`), the Pipeline with its spool and journal, the engine and a `file:` store.
What stands in: the network. The feeder calls `handle_updates` with raw MTProto `Updates`
(one `UpdateNewChannelMessage` each, pts 1..N), and at start resends everything after the pts
the session file holds, as Telegram's getDifference does after a restart. To take the worst
case, every update state that reaches the session storage is committed at once (kurigram
commits at its next save; a crash after that commit is what loses updates).

    python -m tgsync_cli.bench.serve_child SESSION_DIR STORE_URI N [--no-gate] [--rate R]

Prints `from P` (the pts it resumes after), `fed`, then `done` after a clean stop.
`--no-gate` runs it as tgsync did before: no journal, no gate (events wait in memory).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from io import BytesIO
from pathlib import Path

API_ID, API_HASH = 12345, "0123456789abcdef0123456789abcdef"
TOKEN = "9000:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
BOT = 9000
CHANNEL = 777001  # the raw channel id; the Bot API id is -(10**12 + CHANNEL)
CHAT_ID = -(10**12 + CHANNEL)
T0 = 1_733_047_200
FIRST_USER = 50_000


def user_of(pts: int) -> int:
    return FIRST_USER + pts


def _wire(obj):
    from pyrogram.raw.core import TLObject

    return TLObject.read(BytesIO(obj.write()))


def updates_for(pts: int):
    """Telegram's packet for message number `pts` in the club: a new member writes."""
    from pyrogram import raw

    uid = user_of(pts)
    channel = raw.types.Channel(id=CHANNEL, title="Sunday Long Run", photo=raw.types.ChatPhotoEmpty(),
                                date=T0, access_hash=CHANNEL * 3 + 1, megagroup=True)
    user = raw.types.User(id=uid, access_hash=uid * 7 + 1, first_name=f"Runner {pts}")
    msg = raw.types.Message(id=pts, peer_id=raw.types.PeerChannel(channel_id=CHANNEL),
                            from_id=raw.types.PeerUser(user_id=uid), date=T0 + pts, message="hi")
    upd = raw.types.UpdateNewChannelMessage(message=msg, pts=pts, pts_count=1)
    return _wire(raw.types.Updates(updates=[upd], users=[user], chats=[channel], date=T0 + pts, seq=0))


async def run(session_dir: str, store_uri: str, n: int, gate: bool, rate: float) -> None:
    from pyrogram import utils

    from tgsync_cli.core.cache import MemoryMemberCache
    from tgsync_cli.core.engine import Engine
    from tgsync_cli.core.gateway import OfflineGateway
    from tgsync_cli.runtime.pipeline import SPOOL_NAME, Pipeline
    from tgsync_cli.runtime.serve import Runtime
    from tgsync_cli.runtime.telegram_client import make_client
    from tgsync_cli.runtime.update_gate import UpdateStateGate
    from tgsync_cli.stores import open_store

    loop = asyncio.get_running_loop()
    client = make_client(API_ID, API_HASH, TOKEN, session_dir, loop=loop)
    client.skip_updates = True  # recover_gaps would ask Telegram; the feeder resends instead
    storage = client.storage
    await storage.open()
    real_set = storage.set_update_state

    async def committed(states):  # the worst case: a state is on disk the moment it is set
        await real_set(states)
        storage.conn.commit()  # type: ignore[attr-defined]  # pyrogram's SQLiteStorage
    storage.set_update_state = committed  # type: ignore[method-assign]
    store = open_store(store_uri)
    engine = Engine(store, OfflineGateway(BOT), MemoryMemberCache(), bot_id=BOT)
    engine.start()
    pipe = Pipeline(engine, spool_path=str(Path(session_dir) / SPOOL_NAME), backoff=(0.01, 0.1),
                    journal=gate)
    runtime = Runtime(client=client, loop=loop, engine=engine, pipeline=pipe, bot_id=BOT)
    if gate:
        UpdateStateGate(pipe.durable_marks).install(client)
    for handler in runtime.handlers():
        client.add_handler(handler)
    await client.dispatcher.start()
    pipe.start()
    state = await storage.get_update_states(utils.get_channel_id(CHANNEL))
    saved = (state[0].pts or 0) if state else 0
    print(f"from {saved}", flush=True)
    for pts in range(saved + 1, n + 1):  # Telegram resends what comes after the saved state
        await client.handle_updates(updates_for(pts))
        await asyncio.sleep(rate)
    print("fed", flush=True)
    while pipe.backlog():
        await asyncio.sleep(0.05)
    await client.dispatcher.stop()
    await loop.run_in_executor(None, pipe.stop, 30.0)
    await storage.save()
    await storage.close()
    store.close()
    print("done", flush=True)


def main(argv: list) -> None:
    logging.getLogger("tgsync").setLevel(logging.CRITICAL)
    logging.getLogger("pyrogram").setLevel(logging.CRITICAL)
    args = [a for a in argv if not a.startswith("--")]
    rate = 0.001
    if "--rate" in argv:
        rate = float(argv[argv.index("--rate") + 1])
        args.remove(argv[argv.index("--rate") + 1])
    session_dir, store_uri, n = args[0], args[1], int(args[2])
    asyncio.run(run(session_dir, store_uri, n, gate="--no-gate" not in argv, rate=rate))


if __name__ == "__main__":
    main(sys.argv[1:])
