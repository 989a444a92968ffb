"""Soak (bounded): thousands of updates of forty busy clubs through the pipeline while the
store fails 5 % of its calls. The roster must end exactly as in the run where nothing failed.
`scripts/soak` runs the full 100,000-update version and prints the figures."""

import pytest

from tgsync_cli.sources.botapi import parse_update
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.core.engine import Engine
from tgsync_cli.sim.faults import FaultyStore, SoakTelegram, duplicates, run_soak, snapshot, soak_updates
from tgsync_cli.runtime.pipeline import Pipeline
from tgsync_cli.stores import open_store

pytestmark = pytest.mark.slow

UPDATES = 2000  # about 10 s on this machine's 2 cores for both runs; scripts/soak does 100,000


def test_with_the_store_failing_5_percent_of_calls_no_event_is_lost_or_applied_twice():
    clean = run_soak(UPDATES, fault_rate=0.0, seed=11)
    faulty = run_soak(UPDATES, fault_rate=0.05, seed=11)
    assert faulty["faults_injected"] > 50 and faulty["retries"] == faulty["faults_injected"]
    assert faulty["lost"] == 0 and faulty["spooled"] == 0 and faulty["refused"] == 0
    assert faulty["duplicates"] == {"members": 0, "accounts": 0}
    assert clean["members"] > 500
    assert faulty["snapshot"] == clean["snapshot"]


def test_a_restart_in_the_middle_of_an_outage_spools_and_replays_to_the_same_roster(tmp_path):
    updates = [ev for u in soak_updates(600, seed=3) for ev in parse_update(u)]
    reference = run_soak(600, fault_rate=0.0, seed=3)["snapshot"]
    store = open_store("memory:")
    faults = FaultyStore(store)
    spool = tmp_path / "spool.jsonl"

    def process():
        engine = Engine(faults, SoakTelegram(9000), MemoryMemberCache(), bot_id=9000)
        engine.start()
        return Pipeline(engine, spool_path=str(spool), backoff=(0.01, 0.05))

    first = process()
    first.start()
    for ev in updates[:300]:
        first.submit(ev)
    faults.fail_for(3600)  # MongoDB goes down; the operator restarts the bot
    for ev in updates[300:400]:
        first.submit(ev)
    spooled = first.stop(timeout=0.5)
    assert spooled > 0 and spool.exists()
    faults.heal()
    second = process()
    assert second.start() == spooled
    for ev in updates[400:]:
        second.submit(ev)
    assert second.stop(timeout=60) == 0
    assert first.applied + second.applied == len(updates)
    assert snapshot(store) == reference
    assert duplicates(store) == {"members": 0, "accounts": 0}


def test_replies_lost_after_the_write_lose_nothing_and_every_club_gets_its_welcome():
    """Before the fix, 37 of 40 clubs never got their welcome in this soak."""
    clean = run_soak(UPDATES, fault_rate=0.0, seed=12)
    faulty = run_soak(UPDATES, fault_rate=0.0, seed=12, after_rate=0.05)
    assert faulty["faults_by_kind"].get("reply_lost_random", 0) > 50  # dozens of lost replies, not a lucky few
    assert faulty["lost"] == 0 and faulty["duplicates"] == {"members": 0, "accounts": 0}
    assert faulty["welcomes"] == faulty["welcome_chats"] == 40
    assert faulty["snapshot"] == clean["snapshot"]


def test_kill_9_midway_a_redis_outage_and_a_forget_from_another_process_lose_and_resurrect_nothing(tmp_path):
    """Real processes: the serve-like child is SIGKILLed and restarted from what it acknowledged;
    `forget` runs meanwhile; redis-server dies and comes back (when installed)."""
    from tgsync_cli.bench.soak import run_process_soak

    r = run_process_soak(3000, 0.05, seed=5, workdir=str(tmp_path))
    assert 0 < r["killed_at_update"] < 3000
    assert (r["lost"], r["duplicated"], r["resurrected"]) == (0, 0, 0)
    assert r["welcomes"] == r["welcome_clubs"] == r["clubs"] == 40
    # everything equal to the reference, but for status_at of a member active by messages alone
    # where a kill -9 cut the window that held their earliest message (the known limit)
    assert r["same_as_reference"] or r["status_at_only"] > 0
