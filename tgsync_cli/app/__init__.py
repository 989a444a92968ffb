"""The composition root's offline use cases: simulate, demo, replay, roster and clubs views.

It sits above everything it assembles (it runs the simulator), so it is its own layer."""

from tgsync_cli.app.offline import (BUNDLED_DEMO, ReplayReport, SimulationResult, clubs, open_updates, replay, roster,
                                    simulate)
from tgsync_cli.runtime.wiring import club_view, find_club, make_cache, make_engine, store_from, utcnow

__all__ = ["BUNDLED_DEMO", "ReplayReport", "SimulationResult", "clubs", "open_updates", "replay", "roster", "simulate",
           "club_view", "find_club", "make_cache", "make_engine", "store_from", "utcnow"]
