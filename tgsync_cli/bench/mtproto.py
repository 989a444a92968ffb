"""`scripts/bench --path mtproto`: the serve path from the encrypted bytes Telegram sends.

Each group message of the workload becomes what Telegram's server would put on the wire for a
bot: an `Updates` holding one `UpdateNewChannelMessage` (with the sender's `User` and the group's
`Channel`), built from pyrogram's own TL objects, framed as an MTProto message and encrypted with
pyrogram's session crypto in the server-to-client direction (AES-IGE, keys derived at x = 8, the
msg_key from the auth key's bytes 96..128). The bench then runs, in this process:

  decrypt + TL read   pyrogram.crypto.mtproto.unpack, as Session.handle_packet calls it
  handle_updates      Client.handle_updates: peers saved to the session storage, update state
  dispatch            pyrogram's Dispatcher: the parser (Message._parse), filters, our handler
  our handler         Runtime.on_message: the adapter (events_from_message) and Pipeline.submit
  pipeline + engine   the pipeline worker's per-event step (_with_retry → Engine.handle)

Not run: the socket read and the session's msg_id bookkeeping before unpack, the ack sent back,
the hand-off between the loop and the worker thread (the queue put is run, the wake-up is not),
and the last_seen flush (the engine bench counts it). The senders are members the cache holds:
the hot path serve sees all day. Stage times come from one instrumented pass; the per-message
totals and the fast-path ratio from un-instrumented passes, slow and fast interleaved, each
timed with process CPU time.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import os
import shutil
import tempfile
import time
from io import BytesIO
from datetime import datetime, timedelta
from functools import partial
from typing import Dict, List, Optional, Tuple, cast

from pyrogram import StopPropagation, raw
from pyrogram.crypto import aes
from pyrogram.crypto.mtproto import kdf, unpack
from pyrogram.raw.core import Long
from pyrogram.raw.core import Message as MTMessage

from tgsync_cli.bench.stats import spread
from tgsync_cli.bench.workload import BOT_ID, Workload, generate, populate, starting_documents
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import ChatRef, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.stores import open_store

AUTH_KEY = hashlib.sha256(b"tgsync bench auth key").digest() * 8  # 256 bytes, as Telegram's
AUTH_KEY_ID = hashlib.sha1(AUTH_KEY).digest()[-8:]
SESSION_ID = b"tgsyncbn"
SALT = 0x5EED
SUPER = 10**12
STAGES = ("decrypt + TL read", "handle_updates", "fast path check", "Message._parse",
          "filters + dispatch", "our handler", "pipeline", "engine")
OURS = ("fast path check", "our handler", "pipeline", "engine")


def server_pack(body, msg_id: int, seq_no: int) -> bytes:
    """An MTProto message from the server, encrypted as Telegram encrypts it for a client."""
    inner = body.write()
    data = Long(SALT) + SESSION_ID + MTMessage(body, msg_id, seq_no, len(inner)).write()
    padding = os.urandom(-(len(data) + 12) % 16 + 12)
    msg_key = hashlib.sha256(AUTH_KEY[96:128] + data + padding).digest()[8:24]
    key, iv = kdf(AUTH_KEY, msg_key, False)
    return AUTH_KEY_ID + msg_key + aes.ige256_encrypt(data + padding, key, iv)


def packets(w: Workload, n: int) -> List[bytes]:
    """The first n messages from members the clubs start with, as encrypted packets."""
    P = raw.types
    known = {cid: {p.id for p in ps} for cid, ps in w.initial.items()}
    channels = {ch.id: P.Channel(id=-ch.id - SUPER, title=ch.title or "", photo=P.ChatPhotoEmpty(),
                                 date=0, megagroup=True, access_hash=7) for ch in w.clubs}
    out: List[bytes] = []
    pts, msg_id = 1, (int(time.time()) << 32) | 1
    for _sec, ev in w.events:
        if type(ev) is not MessageSeen or ev.sender is None:
            continue
        s = ev.sender
        if s.id not in known[ev.chat.id]:
            continue
        user = P.User(id=s.id, access_hash=s.id * 7 + 1, first_name=s.first_name,
                      last_name=s.last_name, username=s.username)
        date = calendar.timegm(ev.at.timetuple())
        channel = channels[ev.chat.id]
        msg = P.Message(id=pts, peer_id=P.PeerChannel(channel_id=channel.id),
                        from_id=P.PeerUser(user_id=s.id), date=date, message="km today")
        body = P.Updates(updates=[P.UpdateNewChannelMessage(message=msg, pts=pts, pts_count=1)],
                         users=[user], chats=[channel], date=date, seq=0)
        out.append(server_pack(body, msg_id, 1))
        pts += 1
        msg_id += 4
        if len(out) >= n:
            break
    return out


class Timers:
    def __init__(self) -> None:
        self.ns: Dict[str, int] = dict.fromkeys(STAGES, 0)

    def add(self, stage: str, ns: int) -> None:
        self.ns[stage] += ns


class Rig:
    """A never-connected pyrogram Client with serve's handlers, our pipeline and engine."""

    def __init__(self, w: Workload, root: str, fast: bool):
        from tgsync_cli.runtime.pipeline import Pipeline
        from tgsync_cli.runtime.serve import Runtime
        from tgsync_cli.runtime.telegram_client import make_client

        self.loop = asyncio.new_event_loop()
        self.store = open_store(f"file:{root}/{'fast' if fast else 'slow'}")
        populate(self.store, w, starting_documents(w))
        self.engine = Engine(self.store, OfflineGateway(BOT_ID, "aydarun_bot"), MemoryMemberCache(),
                             bot_id=BOT_ID, bot_username="aydarun_bot")
        self.engine.start()
        self.pipeline = Pipeline(self.engine, max_pending=1_000_000, sleep=lambda s: None)
        self.client = make_client(1, "0" * 32, f"{BOT_ID}:{'A' * 35}", root, in_memory=True,
                                  loop=self.loop)
        self.client.skip_updates = True
        self.runtime = Runtime(client=self.client, loop=self.loop, engine=self.engine,
                               pipeline=self.pipeline, bot_id=BOT_ID)
        self.fast = fast
        self.timers: Optional[Timers] = None
        self.loop.run_until_complete(self._setup())

    async def _setup(self) -> None:
        await self.client.storage.open()
        from tgsync_cli.runtime.peer_memo import install as remember_peers

        remember_peers(self.client)  # as serve does
        d = self.client.dispatcher
        d.locks_list.append(asyncio.Lock())
        for h in self.runtime.handlers():
            self.client.add_handler(h)
        if self.fast:
            from tgsync_cli.runtime.fast_path import install

            assert install(self.client, self.runtime) is not None
        for _ in range(5):
            await asyncio.sleep(0)  # add_handler registers in a task
        self._instrument()

    def _instrument(self) -> None:
        """Timing wrappers that do nothing unless a pass is instrumented."""
        d = self.client.dispatcher
        parsers = d.update_parsers
        upd = raw.types.UpdateNewChannelMessage
        # pyrogram's dict is typed by its first literal (tuple keys); it is re-keyed by type
        inner_parse = parsers[upd]  # type: ignore[index]

        async def parse(update, users, chats):
            if self.timers is None:
                return await inner_parse(update, users, chats)
            t = time.perf_counter_ns()
            try:
                return await inner_parse(update, users, chats)
            except StopPropagation:  # the fast path took it: no parse happened
                self._fast_ns += time.perf_counter_ns() - t
                raise
            finally:
                self._parse_ns += time.perf_counter_ns() - t
        parsers[upd] = parse  # type: ignore[index]
        rt = self.runtime
        inner_take = rt._take

        async def take(*args):
            if self.timers is None:
                return await inner_take(*args)
            t = time.perf_counter_ns()
            try:
                return await inner_take(*args)
            finally:
                self._handler_ns += time.perf_counter_ns() - t
        rt._take = take  # type: ignore[method-assign]
        eng = self.engine
        inner_handle = eng.handle

        def handle(event):
            if self.timers is None:
                return inner_handle(event)
            t = time.perf_counter_ns()
            try:
                return inner_handle(event)
            finally:
                self.timers.add("engine", time.perf_counter_ns() - t)
        eng.handle = handle  # type: ignore[method-assign]

    def run(self, pkts: List[bytes], timers: Optional[Timers] = None) -> float:
        """One pass over the packets; returns process CPU seconds it took."""
        self.timers = timers
        self._parse_ns = self._handler_ns = self._fast_ns = 0
        cpu = time.process_time()
        self.loop.run_until_complete(self._pass(pkts))
        self._apply()
        spent = time.process_time() - cpu
        self.timers = None
        return spent

    async def _pass(self, pkts: List[bytes]) -> None:
        pc, t = time.perf_counter_ns, self.timers
        client, d = self.client, self.client.dispatcher
        worker = asyncio.ensure_future(d.handler_worker(d.locks_list[0]))
        for p in pkts:
            a = pc()
            data = unpack(BytesIO(p), SESSION_ID, AUTH_KEY, AUTH_KEY_ID)
            b = pc()
            await client.handle_updates(data.body)
            if t is not None:
                t.add("decrypt + TL read", b - a)
                t.add("handle_updates", pc() - b)
        d.updates_queue.put_nowait(None)  # the worker stops after what is queued
        a = pc()
        await worker
        if t is not None:
            fast_ns = self._fast_ns
            t.add("Message._parse", self._parse_ns - fast_ns)
            t.add("fast path check", fast_ns)
            t.add("our handler", self._handler_ns)  # the fast path's submit is in its check
            t.add("filters + dispatch", pc() - a - self._parse_ns - self._handler_ns)

    def _apply(self) -> None:
        """The pipeline worker's step for each queued event (as Pipeline._run does it)."""
        p, pc, t = self.pipeline, time.perf_counter_ns, self.timers
        a = pc()
        before = t.ns["engine"] if t is not None else 0
        while True:
            try:
                _seq, item = p._q.get_nowait()  # (journal sequence, event), as submit queues them
            except Exception:
                break
            outcome = p._with_retry(partial(self.engine.handle, item), type(item).__name__)
            if outcome is not True:  # a rig that cannot apply its events measures nothing
                raise RuntimeError(f"the bench's {type(item).__name__} was not applied: {outcome}")
            p.forget.note_applied(item)
            p.applied += 1
        if t is not None:
            t.add("pipeline", pc() - a - (t.ns["engine"] - before))

    def close(self) -> None:
        self.engine.flush()
        self.loop.run_until_complete(self.client.storage.close())
        self.loop.close()
        self.store.close()


def run(n: int = 5000, rounds: int = 3, quick: bool = False) -> Dict[str, object]:
    """Slow and fast path rigs, interleaved: `rounds` timed passes each over n packets."""
    w = generate(4 if quick else 10, 300, 1, 5000)
    pkts = packets(w, n)
    root = tempfile.mkdtemp(prefix="tgsync-mtproto-")
    try:
        rigs = {"slow": Rig(w, root, fast=False)}
        try:
            rigs["fast"] = Rig(w, root, fast=True)
        except ImportError:  # no fast path in this tree
            pass
        for rig in rigs.values():
            rig.run(pkts[: min(500, len(pkts))])  # warm-up: imports, caches, SQLite pages
        cpu: Dict[str, List[float]] = {k: [] for k in rigs}
        for r in range(rounds):
            order = list(rigs) if r % 2 == 0 else list(reversed(list(rigs)))
            for k in order:
                cpu[k].append(rigs[k].run(pkts))
        stages = {}
        for k, rig in rigs.items():
            tm = Timers()
            rig.run(pkts, tm)
            stages[k] = tm
        applied = {k: rig.pipeline.applied for k, rig in rigs.items()}
        for rig in rigs.values():
            rig.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out: Dict[str, object] = {"mtproto_messages": len(pkts), "mtproto_rounds": rounds,
                              "mtproto_applied": applied}
    for k, vals in cpu.items():
        us = [1e6 * v / len(pkts) for v in vals]
        out[f"mtproto_{k}_us_per_message"] = [round(x, 2) for x in spread(us)]
        out[f"mtproto_{k}_messages_per_cpu_s"] = round(1e6 / spread(us)[1])
        tm = stages[k]
        total = sum(tm.ns.values())
        out[f"mtproto_{k}_stages_us"] = {s: round(tm.ns[s] / 1000 / len(pkts), 2) for s in STAGES}
        out[f"mtproto_{k}_our_share"] = round(sum(tm.ns[s] for s in OURS) / total, 3) if total else 0.0
    if "fast" in cpu:
        ratios = [s / f for s, f in zip(cpu["slow"], cpu["fast"], strict=True)]  # each round's pair, interleaved
        out["mtproto_fast_path_speedup_runs"] = [round(x, 2) for x in spread(ratios)]
        out["mtproto_fast_path_speedup"] = round(spread(ratios)[1], 2)
        journal = journal_us(w, len(pkts))
        out["journal_us_per_event"] = round(journal, 2)
        slow, fast = (spread([1e6 * v / len(pkts) for v in cpu[k]])[1] for k in ("slow", "fast"))
        out["mtproto_fast_path_speedup_with_journal"] = round((slow + journal) / (fast + journal), 2)
    return out


def journal_us(w: Workload, n: int) -> float:
    """What serve's journal adds to every event it accepts (either path): the CPU of accepting n
    group messages into a pipeline that journals them to a spool, until they are fsynced, less the
    same without a journal. The rigs above have none: this is the durability both paths pay."""
    from tgsync_cli.runtime.pipeline import Pipeline

    club = starting_documents(w)["clubs"][0]
    chat = ChatRef(club["telegram_group_id"], "supergroup", club["name"])
    people = [Person(m["telegram_id"], first_name=m.get("first_name") or "") for m in club["members"]]
    events = [MessageSeen(chat, people[i % len(people)], datetime(2025, 3, 3) + timedelta(seconds=i))
              for i in range(n)]
    root = tempfile.mkdtemp(prefix="tgsync-journal-")
    engine = Engine(open_store("memory:"), OfflineGateway(BOT_ID), MemoryMemberCache(), bot_id=BOT_ID)
    spent = []
    try:
        for spool in (None, os.path.join(root, "spool.jsonl")):
            p = Pipeline(engine, spool_path=spool, max_pending=n + 1)
            journal = p._journal  # the writer alone: no worker applying the events
            if journal is not None:
                journal.start()
            cpu = time.process_time()
            for e in events:
                p.submit(e, timeout=0)
            deadline = time.monotonic() + 60
            while journal is not None and journal.marks()[1] < n and time.monotonic() < deadline:
                time.sleep(0.001)
            spent.append(time.process_time() - cpu)
            if journal is not None:
                journal.stop(1.0)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 1e6 * (spent[1] - spent[0]) / n


def render(out: Dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(100, Console().width))
    n = out["mtproto_messages"]
    kinds = [k for k in ("slow", "fast") if f"mtproto_{k}_stages_us" in out]
    t = Table(title=f"serve path from encrypted MTProto bytes: {n:,} group messages from cached "
                    f"members, µs a message by stage (one instrumented pass)")
    t.add_column("stage")
    for k in kinds:
        t.add_column("full parse" if k == "slow" else "fast path", justify="right")
    for s in STAGES:
        t.add_row(s + (" (ours)" if s in OURS else ""),
                  *[f"{cast(Dict[str, float], out[f'mtproto_{k}_stages_us'])[s]:.2f}" for k in kinds])
    t.add_row("our share", *[f"{100 * cast(float, out[f'mtproto_{k}_our_share']):.1f} %" for k in kinds])
    con.print(t)
    for k in kinds:
        lo, med, hi = cast(List[float], out[f"mtproto_{k}_us_per_message"])
        con.print(f"{'full parse' if k == 'slow' else 'fast path'}: {med:.1f} µs CPU a message "
                  f"({lo:.1f}–{hi:.1f}), {out[f'mtproto_{k}_messages_per_cpu_s']:,} messages a CPU second")
    if "mtproto_fast_path_speedup" in out:
        lo, med, hi = cast(List[float], out["mtproto_fast_path_speedup_runs"])
        mark = "[green]met[/]" if med >= 1.7 else "[red]missed[/]"
        con.print(f"fast path: {med:.2f}× the messages a CPU second ({lo:.2f}–{hi:.2f}, "
                  f"{out['mtproto_rounds']} interleaved rounds; target ≥1.7×: {mark})")
        con.print(f"serve's journal adds {out['journal_us_per_event']:.1f} µs CPU to every accepted event on "
                  f"either path (not in the rigs): with it, {out['mtproto_fast_path_speedup_with_journal']:.2f}×")


def main(json_out: bool, quick: bool) -> Tuple[int, Dict[str, object]]:
    out = run(n=2000 if quick else 5000, rounds=3)
    if not json_out:
        render(out)
    return 0, out
