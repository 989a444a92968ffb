"""A lost unique-key race reaches callers as the store's own `StoreConflict`, never as a driver
error: the pipeline retries it (doing the step again finds the winner's row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import mongomock
import pytest
from pymongo.errors import DuplicateKeyError

from tgsync_cli.core.errors import StoreConflict
from tgsync_cli.runtime.pipeline import is_race
from tgsync_cli.stores.mongo import open_mongo
from tests.stores.backends import join

T = datetime(2025, 6, 1, 9, 0)


def test_a_duplicate_key_from_mongodb_is_a_store_conflict_the_pipeline_retries(monkeypatch: Any) -> None:
    store = open_mongo("mongodb://mongomock", "conflict", client=mongomock.MongoClient())
    doc, _ = store.create_club(-100404, "Track Tuesday", None, {"bot_present": True})

    def another_writer_won(*args: Any, **kwargs: Any) -> Any:
        raise DuplicateKeyError("E11000 duplicate key error collection: clubs")

    monkeypatch.setattr(store.clubs, "update_one", another_writer_won)
    with pytest.raises(StoreConflict) as raised:
        store.observe(doc["_id"], join(7, T))
    assert is_race(raised.value) and not isinstance(raised.value, DuplicateKeyError)
    assert "lost a race" in str(raised.value)
    monkeypatch.undo()
    store.observe(doc["_id"], join(7, T))  # the retry finds the way clear
    assert store.member(doc["_id"], 7)["status"] == "active"


def test_a_plain_driver_error_is_not_a_race() -> None:
    assert not is_race(DuplicateKeyError("E11000"))  # only the store's typed error is one
    assert is_race(StoreConflict("store: observe lost a race"))
