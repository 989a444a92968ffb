"""What `serve --metrics` costs the hot path: a known member's message, with and without it.

Both sides run the same messages through what serve runs for each one: the update loop's
hand-off (`Runtime._take` bookkeeping: a dict increment and a time) and the worker's apply
(`engine.handle` between the pipeline observer's `applying`/`applied`). Side A has the silent
observer and no counting; side B the metrics observer. Interleaved ABAB in one process so both
see the same machine; the result is a ratio, never a timed assertion.

    python -m tgsync_cli.bench.metrics_cost [--messages N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List

from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.events import BotStatusChanged, ChatRef, MemberState, MemberStatusChanged, MessageSeen, Person
from tgsync_cli.core.gateway import OfflineGateway
from tgsync_cli.runtime.metrics import Metrics
from tgsync_cli.runtime.pipeline import Observer
from tgsync_cli.stores import open_store

CHAT = ChatRef(-1001, "supergroup", "Bench Club")
T0 = datetime(2025, 1, 1)
MEMBERS = 200


def _engine() -> Engine:
    engine = Engine(open_store("memory:"), OfflineGateway(9000), MemoryMemberCache(), bot_id=9000)
    engine.start()
    engine.handle(BotStatusChanged(CHAT, None, MemberState("left"), MemberState("member"), T0))
    for uid in range(1, MEMBERS + 1):
        engine.handle(MemberStatusChanged(CHAT, Person(uid), MemberState("member"), T0))
    return engine


def _side(observer: Any, counting: bool) -> Callable[[List[MessageSeen]], float]:
    engine = _engine()
    received = {"message": 0}
    state: Dict[str, Any] = {"last": None}

    def run(messages: List[MessageSeen]) -> float:
        began = time.perf_counter()
        for ev in messages:
            if counting:  # what Runtime._take adds per update
                received["message"] += 1
                state["last"] = time.time()
            observer.applying(ev)
            engine.handle(ev)
            observer.applied(ev)
        return time.perf_counter() - began
    return run


def measure(messages: int = 20000, rounds: int = 7) -> Dict[str, float]:
    batch = [MessageSeen(CHAT, Person(1 + i % MEMBERS), T0 + timedelta(seconds=i)) for i in range(messages)]
    plain = _side(Observer(), counting=False)
    metered = _side(Metrics().observer(), counting=True)
    plain(batch[:1000])
    metered(batch[:1000])  # warm both
    a: List[float] = []
    b: List[float] = []
    for _ in range(rounds):
        a.append(plain(batch))
        b.append(metered(batch))
    pa, pb = statistics.median(a) / messages, statistics.median(b) / messages
    return {"messages": messages, "rounds": rounds, "plain_us": pa * 1e6, "metrics_us": pb * 1e6,
            "ratio": pb / pa}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = measure(a.messages, a.rounds)
    if a.json:
        print(json.dumps(r))
        return
    print(f"hot path (known member's message), median of {r['rounds']} rounds of {r['messages']:,}:")
    print(f"  without metrics  {r['plain_us']:.2f} µs/message")
    print(f"  with metrics     {r['metrics_us']:.2f} µs/message  (ratio {r['ratio']:.2f})")


if __name__ == "__main__":
    main()
