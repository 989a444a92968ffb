"""The requests ledger in both backends: a request is claimed by exactly one serve, however many
race for it, and only the claim's holder records its outcome."""

import json
import subprocess
import sys
from datetime import datetime, timedelta

import mongomock
import pytest

from tgsync_cli.core.requests import new_request
from tgsync_cli.stores import open_store
from tgsync_cli.stores.mongo import MongoStore

T = datetime(2025, 3, 1, 9)
CLAIMER = """
import json, sys
from datetime import datetime, timedelta
from tgsync_cli.stores import open_store
store = open_store(sys.argv[1])
ids = json.loads(sys.argv[2])
now = datetime(2025, 3, 1, 9)
got = [i for i in ids if store.claim_request(i, sys.argv[3], now, now - timedelta(minutes=2))]
print(json.dumps(got))
"""


def stores():
    yield "sqlite", open_store("memory:")
    yield "mongo", MongoStore(mongomock.MongoClient()["ayda"], "mongodb://test/ayda")


@pytest.mark.parametrize("name,store", list(stores()), ids=lambda v: v if isinstance(v, str) else "")
def test_one_claim_wins_and_only_its_holder_finishes(name, store):
    req = store.add_request(new_request("club_a", 5, "remove", "app", T))
    mine = store.claim_request(req["_id"], "serve-1", T, T - timedelta(minutes=2))
    assert mine["state"] == "applying" and mine["attempts"] == 1
    assert store.claim_request(req["_id"], "serve-2", T, T - timedelta(minutes=2)) is None
    assert store.finish_request(req["_id"], "serve-2", {"outcome": "failed"}) is False
    assert store.finish_request(req["_id"], "serve-1", {"outcome": "removed", "done_at": T}) is True
    [done] = store.requests_of("club_a")
    assert (done["state"], done["outcome"]) == ("done", "removed")
    assert store.claim_request(req["_id"], "serve-3", T + timedelta(hours=1), T + timedelta(hours=1)) is None


@pytest.mark.parametrize("name,store", list(stores()), ids=lambda v: v if isinstance(v, str) else "")
def test_one_waiting_join_request_per_person_however_often_they_ask(name, store):
    a = store.open_join_request(new_request("club_a", 7, "approve", "roster", T, state="waiting"))
    b = store.open_join_request(new_request("club_a", 7, "approve", "roster", T + timedelta(minutes=1),
                                            state="waiting"))
    assert a["_id"] == b["_id"] and a["state"] == "waiting"
    assert store.close_join_requests("club_a", 7, {"outcome": "approved"}) == 1
    assert store.requests_of(states=("waiting",)) == []


def test_two_serves_in_two_processes_never_take_the_same_request(tmp_path):
    uri = f"file:{tmp_path}/store"
    store = open_store(uri)
    ids = [store.add_request(new_request("club_a", 100 + i, "remove", "app", T))["_id"] for i in range(60)]
    store.close()
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, uri, json.dumps(order), f"serve-{n}"],
                              stdout=subprocess.PIPE, text=True)
             for n, order in enumerate((ids, list(reversed(ids))))]
    claimed = [set(json.loads(p.communicate(timeout=60)[0])) for p in procs]
    assert claimed[0].isdisjoint(claimed[1])
    assert claimed[0] | claimed[1] == set(ids)


@pytest.mark.parametrize("name,store", list(stores()), ids=lambda v: v if isinstance(v, str) else "")
def test_forget_erases_the_person_s_requests_too(name, store):
    store.add_request(new_request("club_a", 5, "remove", "app", T))
    store.add_request(new_request("club_a", 6, "ban", "app", T))
    store.forget(5)
    assert [r["telegram_id"] for r in store.requests_of()] == [6]
