"""Hold kurigram's update state back until the spool has the events of the updates before it.

kurigram saves the update state (pts/qts/seq per channel, `storage.set_update_state`) in
`Client.handle_updates`, when an update arrives and *before* a handler has seen it; after a
restart Telegram resends only what comes after that state. A kill -9 between the two would lose
the update for good. The gate sits between kurigram and its session storage:

- every `set_update_state` is held, in order, with the updates kurigram had queued for dispatch
  when the call that set it (`handle_updates` or `recover_gaps`) ended;
- a dispatcher worker finishes an update when it takes its next one: by then our handlers have
  translated it and handed its events to the pipeline, which journaled them (runtime/journal.py);
- a held state goes to the real storage once every update queued before it is finished and the
  journal's `durable` mark covers every event accepted by then. A pump on the client's loop
  checks every 20 ms, and `storage.save()` releases what is ready first.

So whatever the session file says Telegram need not resend is in the spool (or the store), and
the spool is applied first at the next start. The gate errs one way only: a state not yet
released at a crash makes Telegram resend a few updates, which the engine applies idempotently.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

log = logging.getLogger("tgsync.update_gate")
PUMP_SECONDS = 0.02


@dataclass
class _Held:
    states: List[Any]
    calls: Set[int]                 # kurigram calls still queueing the updates this state covers
    packets: Optional[int] = None   # every update ticket up to this one must be finished
    journal: Optional[int] = None   # then every event accepted up to this one must be durable


class UpdateStateGate:
    def __init__(self, marks: Callable[[], Tuple[int, int]]):
        self._marks = marks  # the pipeline's (accepted, durable) journal sequence numbers
        self._held: Deque[_Held] = deque()
        self._by_call: Dict[int, List[_Held]] = {}  # a running call -> the held states waiting on it
        self._running: Set[int] = set()
        self._call_ids = itertools.count(1)
        self._tickets = 0  # updates queued for dispatch so far
        self._low = 1      # every ticket below this one is finished
        self._finished: Set[int] = set()
        self._task_ticket: Dict[Any, int] = {}
        self._real_set: Optional[Callable[..., Any]] = None
        self._pump: Optional[asyncio.Task] = None
        self.held = 0      # states held back so far (for tests and `status`)
        self.released = 0

    # -- installing --------------------------------------------------------------------------------
    def install(self, client: Any) -> bool:
        """Wrap the client's storage, its dispatch queue and the calls that set the state.
        False for a client without them (a stand-in that never saves an update state)."""
        storage = getattr(client, "storage", None)
        dispatcher = getattr(client, "dispatcher", None)
        if storage is None or dispatcher is None or not hasattr(storage, "set_update_state"):
            return False
        self._real_set = storage.set_update_state
        real_save = storage.save

        async def set_update_state(update_state: Any) -> None:
            self.hold(update_state)

        async def save() -> None:
            await self.release_ready()
            await real_save()

        storage.set_update_state = set_update_state
        storage.save = save
        client.handle_updates = self._tracked(client.handle_updates)
        client.recover_gaps = self._tracked(client.recover_gaps)
        self._wrap_queue(dispatcher.updates_queue)
        return True

    def _tracked(self, call: Callable[..., Any]) -> Callable[..., Any]:
        async def tracked(*args: Any, **kwargs: Any) -> Any:
            cid = next(self._call_ids)
            self._running.add(cid)
            try:
                return await call(*args, **kwargs)
            finally:
                self._call_ended(cid)
        return tracked

    def _wrap_queue(self, q: asyncio.Queue) -> None:
        real_put, real_get = q.put_nowait, q.get

        def put_nowait(packet: Any) -> None:
            self._tickets += 1
            real_put((self._tickets, packet))

        async def get() -> Any:
            task = asyncio.current_task()
            previous = self._task_ticket.pop(task, None)
            if previous is not None:
                self._finish(previous)  # this worker is done with its last update
            ticket, packet = await real_get()
            if packet is None:  # the dispatcher stopping: nothing to handle
                self._finish(ticket)
            else:
                self._task_ticket[task] = ticket
            return packet

        q.put_nowait = put_nowait  # type: ignore[method-assign,assignment]
        q.get = get  # type: ignore[method-assign]

    # -- bookkeeping ----------------------------------------------------------------------------------
    def hold(self, update_state: Any) -> None:
        states = [update_state] if hasattr(update_state, "pts") else list(update_state)
        held = _Held(states, set(self._running))
        if not held.calls:
            held.packets = self._tickets
        for cid in held.calls:
            self._by_call.setdefault(cid, []).append(held)
        self._held.append(held)
        self.held += len(states)
        self._ensure_pump()

    def _call_ended(self, cid: int) -> None:
        """Only the states held while this call ran wait on it: a backlog of held states (a slow
        disk under the journal) must not make every update cost a pass over all of them."""
        self._running.discard(cid)
        for held in self._by_call.pop(cid, ()):
            held.calls.discard(cid)
            if not held.calls:
                held.packets = self._tickets

    def _finish(self, ticket: int) -> None:
        self._finished.add(ticket)
        while self._low in self._finished:
            self._finished.discard(self._low)
            self._low += 1

    def ready(self) -> List[Any]:
        """Pop the held states (in order) whose updates' events are all durable."""
        out: List[Any] = []
        accepted, durable = self._marks()
        while self._held:
            held = self._held[0]
            if held.packets is None or self._low <= held.packets:
                break
            if held.journal is None:
                held.journal = accepted
            if durable < held.journal:
                break
            out.extend(held.states)
            self._held.popleft()
        return out

    async def release_ready(self) -> int:
        states = self.ready()
        if states and self._real_set is not None:
            await self._real_set(states)
            self.released += len(states)
        return len(states)

    def pending(self) -> int:
        return sum(len(h.states) for h in self._held)

    # -- pump --------------------------------------------------------------------------------------
    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            try:
                self._pump = asyncio.get_running_loop().create_task(self._run_pump())
            except RuntimeError:  # no loop running (a test calling hold directly)
                self._pump = None

    async def _run_pump(self) -> None:
        while self._held:
            await asyncio.sleep(PUMP_SECONDS)
            try:
                await self.release_ready()
            except Exception as exc:  # the session file refused: tried again at the next tick
                log.warning("update state not saved yet: %s", type(exc).__name__)

    def close(self) -> None:
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
