"""What a MongoDB call costs the client that makes it, apart from the wait for the server.

The seed side runs on mongomock, an in-process emulator whose own time (a member `find_one` on a
300-member document costs ~700 µs there) says nothing about a real deployment: there the server
does that work on another machine, and the client pays a round trip plus pymongo's BSON encoding
of the command it sends and decoding of the reply it receives. So the bench times the emulator
call only to leave it out, and charges instead what pymongo's own codec (`bson`, its C extension)
takes for the very documents the call would put on the wire. Wall time is then modelled as
client CPU + round trips × latency at a stated latency. pymongo's command machinery beyond the
codec (sessions, server selection, socket writes) is not charged: a choice in the seed's favour.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

import bson

LATENCIES_MS = (0.2, 1.0, 5.0)


def _command(coll: str, method: str, args: tuple, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The command document pymongo would send for this collection call (OP_MSG body)."""
    if method == "find_one":
        cmd: Dict[str, Any] = {"find": coll, "filter": args[0] if args else kwargs.get("filter", {}),
                               "limit": 1, "singleBatch": True}
        proj = args[1] if len(args) > 1 else kwargs.get("projection")
        if proj is not None:
            cmd["projection"] = proj
    elif method == "insert_one":
        cmd = {"insert": coll, "ordered": True, "documents": [args[0]]}
    elif method in ("update_one", "update_many"):
        cmd = {"update": coll, "ordered": True, "updates": [
            {"q": args[0], "u": args[1], "multi": method == "update_many",
             "upsert": bool(kwargs.get("upsert", False))}]}
    else:
        cmd = {method: coll, "args": list(args)}
    cmd["$db"] = "seed"
    cmd["lsid"] = {"id": bson.Binary(b"\0" * 16, 4)}
    return cmd


def _reply(coll: str, method: str, result: Any) -> Dict[str, Any]:
    """The reply document the server would send back."""
    if method == "find_one":
        return {"cursor": {"firstBatch": [result] if result is not None else [], "id": 0,
                           "ns": f"seed.{coll}"}, "ok": 1.0}
    if method == "insert_one":
        return {"n": 1, "ok": 1.0}
    return {"n": 1, "nModified": 1, "ok": 1.0}


class WireMeter:
    """Counts round trips and accumulates the client-side codec time of each call."""

    def __init__(self) -> None:
        self.ops = 0
        self.codec_ns = 0      # pymongo's encode + decode of what the calls carry
        self.excluded_ns = 0   # time spent in the store call and in measuring it: not the client's
        self.bytes_sent = 0
        self.bytes_received = 0

    def call(self, coll: str, method: str, fn, args: tuple, kwargs: Dict[str, Any],
             model: bool = True) -> Any:
        pc = time.perf_counter_ns
        t0 = pc()
        result = fn(*args, **kwargs)
        self.ops += 1
        if model:
            cmd = _command(coll, method, args, kwargs)
            reply = bson.encode(_reply(coll, method, result))  # the server's work: not timed
            t = pc()
            sent = bson.encode(cmd)
            bson.decode(reply)
            self.codec_ns += pc() - t
            self.bytes_sent += len(sent)
            self.bytes_received += len(reply)
        self.excluded_ns += pc() - t0
        return result


def modelled_wall(cpu_seconds: float, round_trips: int, latency_ms: float) -> float:
    """Client CPU plus one latency per round trip (calls made one after another, as both sides do)."""
    return cpu_seconds + round_trips * latency_ms / 1000.0


def wall_table(sides: List[tuple], latencies=LATENCIES_MS) -> Dict[str, Dict[str, float]]:
    """{latency label: {side name: modelled seconds}} for (name, cpu_seconds, round_trips) rows."""
    out: Dict[str, Dict[str, float]] = {}
    for lat in latencies:
        out[f"{lat:g}ms"] = {name: modelled_wall(cpu, ops, lat) for name, cpu, ops in sides}
    return out
