"""`serve`: the bot's runtime — pyrogram's update loop in front, the engine behind a work queue.

Handlers only translate an update (pure, in memory) and hand the events to the pipeline; the
engine runs in the pipeline's worker thread and reaches Telegram through PyrogramGateway, which
bridges each call back onto this loop. So a slow store or a FloodWait never stalls the update
loop, and the loop must stay free while the pipeline drains at shutdown (it runs in an executor).

Shutdown (SIGINT/SIGTERM, or `request_stop`): drain the queue (what cannot be applied within
`drain_timeout` is spooled to the session directory and replayed first on the next start),
flush last_seen, disconnect, exit 0. An update Telegram still delivers while draining is handed
over too rather than dropped: pyrogram has already consumed it, so dropping it would lose it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import queue as queue_mod
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from pyrogram import filters
from pyrogram import raw
from pyrogram.handlers import (
    ChatJoinRequestHandler,
    ChatMemberUpdatedHandler,
    DisconnectHandler,
    MessageHandler,
    RawUpdateHandler,
)

from tgsync_cli.core.events import BotStatusRecheck, RequestsDue
from tgsync_cli.core.engine import ClubInfo, Engine
from tgsync_cli.core.errors import ConfigError
from tgsync_cli.runtime.config import Settings
from tgsync_cli.runtime.fast_path import install as install_fast_path
from tgsync_cli.runtime.peer_memo import PeerMemo
from tgsync_cli.runtime.peer_memo import install as remember_peers
from tgsync_cli.runtime.live import start_client
from tgsync_cli.runtime.pipeline import SPOOL_NAME, Pipeline
from tgsync_cli.runtime.telegram_client import (
    bot_id_from_token,
    check_credentials,
    make_client,
    prepare_session_dir,
)
from tgsync_cli.runtime.telegram_gateway import PyrogramGateway
from tgsync_cli.runtime.wiring import make_engine, store_from, utcnow
from tgsync_cli.runtime.update_gate import UpdateStateGate
from tgsync_cli.sources.pyrogram_updates import (
    events_from_bot_stopped,
    events_from_chat_member_updated,
    events_from_join_request,
    events_from_message,
)

log = logging.getLogger("tgsync.serve")

# ordinary and service messages in groups, and private messages (deep links); channel posts are
# never a person's activity, and the bot's own outgoing messages are nothing to apply
MESSAGES = (filters.group | filters.private) & filters.incoming
# how often the app's requests (removals, bans, approvals) are looked for: polling, also on a
# MongoDB that offers change streams (one query every few seconds is cheap, and it is the same
# code on every backend)
REQUESTS_POLL_SECONDS = 5.0


@dataclass
class StartupReport:
    bot_id: int
    username: str
    privacy_mode: Optional[bool]  # None: Telegram did not say (see privacy_mode_of)
    clubs: List[ClubInfo] = field(default_factory=list)
    replayed: int = 0
    metrics: Optional[str] = None  # where /metrics, /healthz and /readyz answer, when on

    @property
    def route4_warning(self) -> Optional[str]:
        if self.privacy_mode is False:
            return None
        not_admin = [c for c in self.clubs if c.bot_present and not c.bot_is_admin]
        where = ("; clubs where the bot is not an admin: "
                 + ", ".join(f"{c.name or c.chat_id} ({c.chat_id})" for c in not_admin)) if not_admin else ""
        state = "on" if self.privacy_mode else "unknown"
        return (f"privacy mode is {state}: message activity (route 4) only sees group messages where "
                "the bot is an admin, or everywhere once privacy mode is off (@BotFather → "
                f"/setprivacy → Disable){where}")


def privacy_mode_of(me) -> Optional[bool]:
    """Privacy mode from the bot's own user object: off when Telegram sets `bot_chat_history`.

    MTProto has no privacy-mode field; the User flag `bot_chat_history` ("can read all group
    messages", pyrogram's `can_read_all_group_messages`) is an optional flag, so its absence does
    not prove privacy mode is on: that case is reported as unknown.
    """
    return False if getattr(me, "can_read_all_group_messages", None) is True else None


def pipeline_class(queue: str):
    """The work queue implementation; `celery` only where its module has been installed."""
    if queue == "inprocess":
        return Pipeline
    if queue == "celery":
        if importlib.util.find_spec("tgsync_cli.runtime.celery_queue") is None:
            raise ConfigError("queue.backend = celery: celery queue not available in this "
                              "installation (use --queue inprocess)")
        return importlib.import_module("tgsync_cli.runtime.celery_queue").CeleryPipeline
    raise ConfigError(f"queue.backend {queue!r}: expected inprocess or celery")


class Runtime:
    """The wired bot. Built by `build_runtime` for real use; tests pass their own parts."""

    def __init__(self, *, client, loop: asyncio.AbstractEventLoop, engine: Engine, pipeline,
                 bot_id: int, on_started: Optional[Callable[[StartupReport], None]] = None,
                 drain_timeout: float = 30.0, fast_path: bool = True,
                 on_stopping: Optional[Callable[[], None]] = None):
        self.client = client
        self.fast_path = fast_path  # known members' messages skip pyrogram's parse (fast_path.py)
        self.loop = loop
        self.engine = engine
        self.pipeline = pipeline
        self.bot_id = bot_id
        self.on_started = on_started
        self.on_stopping = on_stopping  # told once stopping begins: a later signal only waits for it
        self.drain_timeout = drain_timeout  # then what is left is spooled, not lost
        self.accepting = True
        self.late = 0  # updates that arrived after the stop request (still kept)
        self.started = threading.Event()  # set once updates flow and the worker runs
        self.spooled = 0
        self._stop_requested = False
        self._stop = asyncio.Event()
        self.recheck_pending = False  # the connection dropped: updates may have been missed
        self.requests_poll_seconds = REQUESTS_POLL_SECONDS
        self.gate: Optional[UpdateStateGate] = None  # holds kurigram's update state back
        self.signalled_early: Callable[[], bool] = lambda: False  # the entry point's, under serve
        self.peer_memo: Optional[PeerMemo] = None  # set at start: skips unchanged peer writes
        # plain integers and times for /metrics: the update loop pays no lock for them
        self.received = {"message": 0, "chat_member": 0, "bot_stopped": 0, "chat_join_request": 0}
        self.last_update: Optional[float] = None  # Unix time the newest update arrived
        self.serving_since: Optional[float] = None

    # -- update handlers: translate, submit, return ----------------------------------------------
    async def on_message(self, client, message) -> None:
        await self._take(events_from_message, message, "message")

    async def on_member_updated(self, client, update) -> None:
        await self._take(events_from_chat_member_updated, update, "chat_member")

    async def on_join_request(self, client, request) -> None:
        await self._take(lambda r, _bot: events_from_join_request(r), request, "chat_join_request")

    async def on_disconnect(self, client, session=None) -> None:
        """pyrogram reconnects by itself and fetches what it can, but a bot-status change in that
        gap may never arrive: the bot's status in every club is asked again (as at start) before the
        next update is applied."""
        if self.accepting and not self._stop_requested:
            self.recheck_pending = True
            log.warning("connection to Telegram lost: the bot's status in every club is checked "
                        "again before the next update")

    async def on_raw(self, client, update, users, chats) -> None:
        if isinstance(update, raw.types.UpdateBotStopped):  # a user blocked/unblocked the bot
            await self._take(lambda u, _bot: events_from_bot_stopped(u, users), update, "bot_stopped")

    def handlers(self) -> list:
        return [MessageHandler(self.on_message, MESSAGES),
                ChatMemberUpdatedHandler(self.on_member_updated),
                ChatJoinRequestHandler(self.on_join_request),
                RawUpdateHandler(self.on_raw),
                DisconnectHandler(self.on_disconnect)]

    async def _take(self, translate, update, kind: str) -> None:
        self.received[kind] += 1
        self.last_update = time.time()
        if not self.accepting:
            # Telegram has delivered it and will not again: hand it over all the same, so the
            # drain applies it or the spool keeps it for the next start
            self.late += 1
        try:
            events = translate(update, self.bot_id)
        except Exception as exc:  # one odd update must not take the handler down
            log.error("update not understood, skipped: %s: %s", type(exc).__name__, exc)
            return
        if self.recheck_pending:  # the first update after a reconnect: the check goes first
            self.recheck_pending = False
            events = [BotStatusRecheck(utcnow()), *events]
        for event in events:
            try:
                self.pipeline.submit(event, timeout=0)
            except queue_mod.Full:  # backpressure waits in a thread, never on the loop
                log.warning("work queue full, waiting", extra={"backlog": self.pipeline.backlog()})
                await asyncio.to_thread(self.pipeline.submit, event)
            log.debug("accepted %s", type(event).__name__,
                      extra={"event": type(event).__name__, "chat_id": _chat_id(event),
                             "backlog": self.pipeline.backlog()})

    # -- lifecycle -----------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        """What SIGINT/SIGTERM call: wind down — drain, spool the rest, disconnect. Thread-safe."""
        if self._stop_requested:
            log.warning("%s again: still draining %d pending events", reason, self.pipeline.backlog())
            return
        self._stop_requested = True
        self.accepting = False
        if self.on_stopping:
            self.on_stopping()
        if self.started.is_set():  # while still connecting there is nothing to drain: one line then
            log.info("%s: draining %d pending events", reason, self.pipeline.backlog(),
                     extra={"event": "shutdown", "backlog": self.pipeline.backlog()})
        self.loop.call_soon_threadsafe(self._stop.set)

    def run(self) -> int:
        """Blocks until stopped; 0 after a clean drain. Installs SIGINT/SIGTERM on the main thread."""
        asyncio.set_event_loop(self.loop)
        # before the loop runs any code: a signal from here on is the loop's (request_stop), never
        # an exception inside one of its callbacks, where asyncio would log it and carry on
        signals = self._install_signals()
        if self.signalled_early():  # a signal before ours whose exception something swallowed
            self.request_stop("stop requested while starting")
        try:
            return self.loop.run_until_complete(self._main(signals))
        finally:
            asyncio.set_event_loop(None)

    async def _main(self, signals: dict) -> int:
        connected = pipeline_started = False
        try:
            for h in self.handlers():  # before start(): updates recovered at start reach us too
                self.client.add_handler(h)
            if self.fast_path:
                install_fast_path(self.client, self)
            self.peer_memo = remember_peers(self.client)  # unchanged peers: no session write
            if not await self._connect_unless_stopped():
                log.info("stopped while connecting: nothing was taken from Telegram",
                         extra={"event": "stopped"})
                return 0
            connected = True
            me = await self.client.get_me()
            self.engine.bot_username = self.engine.bot_username or me.username
            self.engine.bot_id = self.engine.bot_id or me.id
            # the start-up check (the bot's own status in every club), before the worker applies
            # the first update; the engine calls Telegram synchronously through the gateway, so
            # never on this loop
            await self.loop.run_in_executor(None, self._startup_check)
            pipeline_started = True
            replayed = self.pipeline.start()
            report = StartupReport(me.id, me.username or "", privacy_mode_of(me),
                                   self.engine.clubs(), replayed)
            log.info("serving as @%s: %d clubs, %d spooled events replayed", report.username,
                     len(report.clubs), replayed, extra={"event": "started"})
            if self.on_started:
                self.on_started(report)
            self.serving_since = time.time()
            self.started.set()
            poller = asyncio.ensure_future(self._poll_requests())
            try:
                await self._stop.wait()
            finally:
                poller.cancel()
        finally:
            self.accepting = False
            # the worker may still need Telegram (admin lists, deep-link checks): keep the loop free.
            # A pipeline never started holds nothing, and must not touch the spool it never read.
            if pipeline_started:
                self.spooled = await self.loop.run_in_executor(None, self.pipeline.stop,
                                                               self.drain_timeout)
            if connected:
                try:
                    await self.client.stop()
                except Exception as exc:  # the work is drained; a failed disconnect is not fatal
                    log.warning("disconnect failed: %s", type(exc).__name__)
            if self.gate is not None:
                self.gate.close()
            if self.on_stopping:
                self.on_stopping()
            for s, before in signals.items():
                self.loop.remove_signal_handler(s)
                signal.signal(s, before)  # whoever started us handles a late signal again
        log.info("stopped: %s events applied, %d spooled for the next start, %d arrived while "
                 "stopping", getattr(self.pipeline, "applied", "?"), self.spooled, self.late,
                 extra={"event": "stopped", "backlog": self.spooled})
        # events that reached no disk (a full one): said in one line by the pipeline; exit 1
        return 1 if getattr(self.pipeline, "unsaved", 0) else 0

    async def _poll_requests(self) -> None:
        """Every few seconds, the engine's worker looks for the app's pending requests (queued
        like an update, so it runs in order with them, in the engine's own thread)."""
        while self.accepting:
            await asyncio.sleep(self.requests_poll_seconds)
            if not self.accepting:
                return
            try:
                self.pipeline.submit(RequestsDue(utcnow()), timeout=0)
            except queue_mod.Full:
                pass  # busy with updates: the next tick asks again

    def _startup_check(self) -> None:
        try:
            self.engine.startup_check(utcnow())
        except Exception as exc:  # a store outage at start must not keep the bot from serving
            log.warning("start-up check failed: %s: %s", type(exc).__name__, exc)

    async def _connect_unless_stopped(self) -> bool:
        """Connect, unless a stop request comes first: connecting can take half a minute or more
        (retries, an unanswering network), and SIGINT/SIGTERM must still end `serve` at once."""
        if self._stop_requested:
            return False
        connect = asyncio.ensure_future(start_client(self.client))
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({connect, stop}, return_when=asyncio.FIRST_COMPLETED)
        if connect.done():
            stop.cancel()
            connect.result()  # a refusal or an unreachable Telegram: raised as one line
            return True
        connect.cancel()
        await asyncio.wait({connect}, timeout=1.0)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:  # pyrogram's half-started session tasks
            task.cancel()
        if others:  # let them unwind, so closing the loop finds none pending (one line, no noise)
            await asyncio.wait(others, timeout=1.0)
        return False

    def _install_signals(self) -> dict:
        """SIGINT/SIGTERM → request_stop; returns the handlers they replace, restored at the end."""
        installed: dict = {}
        if threading.current_thread() is not threading.main_thread():
            return installed
        for sig in (signal.SIGINT, signal.SIGTERM):
            before = signal.getsignal(sig)
            try:
                self.loop.add_signal_handler(sig, self.request_stop, sig.name)
                installed[sig] = before
            except (NotImplementedError, RuntimeError, ValueError):  # platforms without it
                pass
        return installed


def _chat_id(event) -> Optional[int]:
    chat = getattr(event, "chat", None)
    return chat.id if chat is not None else getattr(event, "new_chat_id", None)


def spool_path(settings: Settings) -> Path:
    """Pending events at shutdown go next to the session: private (0700) and per bot."""
    return prepare_session_dir(settings.telegram.session_dir) / SPOOL_NAME


def build_runtime(settings: Settings, queue: Optional[str] = None,
                  on_started: Optional[Callable[[StartupReport], None]] = None,
                  on_stopping: Optional[Callable[[], None]] = None, metrics=None) -> Runtime:
    """Settings → client, gateway, engine, pipeline. Credentials are checked first of all."""
    t = settings.telegram
    check_credentials(t.api_id, t.api_hash, t.bot_token)
    pipeline_cls = pipeline_class(queue or settings.queue.backend)
    spool = spool_path(settings)
    loop = asyncio.new_event_loop()
    client = make_client(t.api_id, t.api_hash, t.bot_token, t.session_dir, loop=loop)
    # catch up on what Telegram queued while we were down (pyrogram skips it by default)
    client.skip_updates = False
    gateway = PyrogramGateway(client, loop, max_flood_wait=t.max_flood_wait)
    store = store_from(settings)
    if metrics is not None:  # store calls timed, posts and replies counted
        from tgsync_cli.runtime.observe import instrument

        store, gateway = instrument(metrics, store, gateway)
    bot_id = bot_id_from_token(t.bot_token)
    engine = make_engine(store, gateway, settings, bot_id=bot_id)
    extra = ({"rewarm_seconds": settings.cache.ttl_seconds / 2} if pipeline_cls is Pipeline
             else {"settings": settings})  # celery: broker_url
    pipeline = pipeline_cls(engine, max_pending=settings.queue.max_pending,
                            flush_seconds=settings.sync.last_seen_flush_seconds,
                            spool_path=str(spool), **extra)
    runtime = Runtime(client=client, loop=loop, engine=engine, pipeline=pipeline, bot_id=bot_id,
                      on_started=on_started, on_stopping=on_stopping)
    # kurigram saves the update state before our handlers run: hold it until the spool has them
    runtime.gate = UpdateStateGate(getattr(pipeline, "durable_marks", lambda: (0, 0)))
    runtime.gate.install(client)
    return runtime


def serve(settings: Settings, queue: Optional[str] = None,
          on_started: Optional[Callable[[StartupReport], None]] = None,
          on_stopping: Optional[Callable[[], None]] = None,
          listen: Optional[Tuple[str, int]] = None,
          signalled_early: Callable[[], bool] = lambda: False) -> int:
    """`listen` (host, port): the health and metrics endpoint, checked by the caller.
    `signalled_early`: whether a stop signal arrived before serve's own handlers."""
    metrics = observed = None
    if listen is not None:
        from tgsync_cli.runtime.metrics import Metrics

        metrics = Metrics("serve")
    runtime = build_runtime(settings, queue, on_started, on_stopping, metrics=metrics)
    runtime.signalled_early = signalled_early
    try:
        if metrics is not None and listen is not None:
            from tgsync_cli.runtime.observe import attach

            raw_store = getattr(runtime.engine.store, "unwrapped", runtime.engine.store)  # not timed
            observed = attach(runtime, metrics, *listen, store=raw_store,
                              spool_path=spool_path(settings),
                              stuck_seconds=settings.metrics.stuck_seconds)
        return runtime.run()
    finally:
        if observed is not None:
            observed.close()
        runtime.engine.store.close()
        runtime.loop.close()
