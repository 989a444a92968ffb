"""Fixtures the store stories share."""

from __future__ import annotations

import pytest

from tests.stores.racing import Server


@pytest.fixture
def racing() -> Server:
    """A mongomock server whose writers a race story can get in the way of."""
    return Server()
