"""Offline pyrogram fixtures: raw TL objects round-tripped through the codec, a never-started Client."""

from __future__ import annotations

import asyncio
import os
import time
from io import BytesIO

import pytest
from pyrogram import Client, raw
from pyrogram.raw.core import TLObject

FAKE_API_HASH = "0123456789abcdef0123456789abcdef"
FAKE_BOT_TOKEN = "9000:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
BOT_ID = 9000
T0 = 1733047200  # 2024-12-01T10:00:00Z


def wire(obj):
    """What the server would send: defaults filled in exactly as the TL codec reads them."""
    return TLObject.read(BytesIO(obj.write()))


def user(uid, first, username=None, bot=False, is_self=False, lang=None):
    return wire(raw.types.User(id=uid, access_hash=uid * 7 + 1, first_name=first, username=username,
                               bot=bot or None, is_self=is_self or None, lang_code=lang))


def supergroup(cid, title, username=None):
    return wire(raw.types.Channel(id=cid, title=title, photo=raw.types.ChatPhotoEmpty(), date=T0,
                                  access_hash=cid * 3 + 1, megagroup=True, username=username))


def broadcast(cid, title):
    return wire(raw.types.Channel(id=cid, title=title, photo=raw.types.ChatPhotoEmpty(), date=T0,
                                  access_hash=cid * 3 + 1, broadcast=True))


def basic_group(cid, title):
    return wire(raw.types.Chat(id=cid, title=title, photo=raw.types.ChatPhotoEmpty(),
                               participants_count=3, date=T0, version=1))


def offline_client(loop=None):
    return Client("tgsync-test", api_id=12345, api_hash=FAKE_API_HASH, bot_token=FAKE_BOT_TOKEN,
                  in_memory=True, loop=loop)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def client():
    return offline_client()


@pytest.fixture
def almaty_tz():
    """A machine clock away from UTC, where pyrogram's naive local datetimes would go wrong."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Almaty"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def tl():
    """The helpers above as a fixture, so test modules never import conftest by name."""
    from types import SimpleNamespace
    return SimpleNamespace(wire=wire, user=user, supergroup=supergroup, broadcast=broadcast,
                           basic_group=basic_group, offline_client=offline_client, run=run,
                           FAKE_API_HASH=FAKE_API_HASH, FAKE_BOT_TOKEN=FAKE_BOT_TOKEN,
                           BOT_ID=BOT_ID, T0=T0)
