"""kill -9 of a serve-like process under a busy store loses no accepted update.

The child is kurigram's real Client (session file, handle_updates, Dispatcher) with serve's
handlers and pipeline; the network is a feeder that resends what the session file says was not
received (bench/serve_child.py). Another process holds the store's write lock most of the time,
so events wait in the work queue when the kill comes. Every state kurigram sets is committed at
once (the worst case). Without the journal and the update-state gate the same run loses updates:
kurigram saved the state past events that lived only in memory."""

from __future__ import annotations

import shutil

from tgsync_cli.bench.kill_soak import run_kill_soak


def test_kill_9_at_random_points_under_a_busy_store_loses_no_accepted_update():
    result = run_kill_soak(n=400, kills=3, seed=3)
    shutil.rmtree(result["workdir"], ignore_errors=True)
    assert result["finished"], result
    assert result["lost"] == 0, result
    assert max(result["resumed_after_pts"]) > 0  # the session file did move on between kills


def test_without_the_journal_and_the_gate_the_same_kills_lose_updates():
    """The harness can see the loss it guards against (what tgsync did before)."""
    result = run_kill_soak(n=400, kills=3, seed=5, gate=False)
    shutil.rmtree(result["workdir"], ignore_errors=True)
    assert result["finished"], result
    assert result["lost"] > 0, result
