"""Building the pyrogram Client: credentials are checked before any connection, never echoed.

Every message names the setting (`telegram.api_hash`) and where to set it, never its value.
The session file holds the bot's authorization key, so its directory is created owner-only
(0700) and the file is made owner-only (0600) as soon as pyrogram creates it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Dict, Optional, Union

from pyrogram import Client
from pyrogram.storage import SQLiteStorage

from tgsync_cli.core.errors import ConfigError
from tgsync_cli.stores.private import make_private_dirs

API_HASH_RE = re.compile(r"^[0-9a-fA-F]{32}$")
BOT_TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{35}$")
SESSION_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _where(key: str) -> str:
    return f"set it in tgsync.toml [telegram] or TGSYNC_TELEGRAM_{key.upper()}"


def check_credentials(api_id, api_hash, bot_token) -> int:
    """Refuse missing or malformed credentials (one line, naming the key); returns api_id as int."""
    if api_id is None or str(api_id).strip() == "":
        raise ConfigError(f"telegram.api_id is missing ({_where('api_id')})")
    text = str(api_id).strip()
    if isinstance(api_id, bool) or not text.isdigit() or int(text) <= 0:
        raise ConfigError(f"telegram.api_id must be a positive integer ({_where('api_id')})")
    if not api_hash:
        raise ConfigError(f"telegram.api_hash is missing ({_where('api_hash')})")
    if not isinstance(api_hash, str) or not API_HASH_RE.match(api_hash.strip()):
        raise ConfigError("telegram.api_hash is malformed: expected 32 hexadecimal characters "
                          f"from my.telegram.org ({_where('api_hash')})")
    if not bot_token:
        raise ConfigError(f"telegram.bot_token is missing ({_where('bot_token')})")
    if not isinstance(bot_token, str) or not BOT_TOKEN_RE.match(bot_token.strip()):
        raise ConfigError("telegram.bot_token is malformed: expected <digits>:<35 characters> "
                          f"from @BotFather ({_where('bot_token')})")
    return int(text)


def bot_id_from_token(bot_token: Optional[str]) -> int:
    """The bot's user id is the token's numeric prefix (no call needed); check_credentials has
    refused a missing or malformed token before this is asked."""
    if not bot_token:
        raise ConfigError(f"telegram.bot_token is missing ({_where('bot_token')})")
    return int(bot_token.split(":", 1)[0])


# Tests only: `host:port` of a loopback stand-in for Telegram's data centre (one that accepts and
# never answers), so connecting, timeouts and signals while connecting run pyrogram's real code
# without anything leaving the machine. Anything but a loopback address is refused.
TEST_ADDRESS_ENV = "TGSYNC_TEST_TELEGRAM_ADDRESS"


def _test_address() -> Optional[tuple]:
    value = os.environ.get(TEST_ADDRESS_ENV)
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        raise ConfigError(f"{TEST_ADDRESS_ENV} must be a loopback host:port")
    return host, int(port)


class _PrivateSQLiteStorage(SQLiteStorage):
    """pyrogram's file storage, with the session file (and its journal) made owner-only."""

    async def server_address(self, value=object):
        test = _test_address()
        return test[0] if test and value is object else await super().server_address(value)

    async def port(self, value=object):
        test = _test_address()
        return test[1] if test and value is object else await super().port(value)

    async def open(self):
        await super().open()
        _owner_only(Path(self.database))

    async def save(self):
        await super().save()
        _owner_only(Path(self.database))


def _owner_only(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        if p.exists():
            os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)


def prepare_session_dir(session_dir: Union[str, os.PathLike]) -> Path:
    d = Path(session_dir).expanduser()
    try:
        make_private_dirs(str(d))
        os.chmod(d, stat.S_IRWXU)
    except OSError as e:
        raise ConfigError(f"telegram.session_dir {d} cannot be created or secured: "
                          f"{e.strerror or type(e).__name__}") from None
    return d


def make_client(api_id, api_hash, bot_token, session_dir: Union[str, os.PathLike],
                name: str = "tgsync", *, loop=None, sleep_threshold: Optional[int] = None,
                in_memory: bool = False) -> Client:
    """A never-started pyrogram Client for the bot; no connection is made here."""
    api_id = check_credentials(api_id, api_hash, bot_token)
    if not SESSION_NAME_RE.match(name or ""):
        raise ConfigError("telegram.session_name must be 1-64 letters, digits, '.', '_' or '-'")
    kwargs: Dict[str, Any] = {}
    if sleep_threshold is not None:
        kwargs["sleep_threshold"] = sleep_threshold
    if loop is not None:
        kwargs["loop"] = loop
    if in_memory:
        kwargs["in_memory"] = True
    else:
        d = prepare_session_dir(session_dir)
        kwargs["workdir"] = str(d)
        kwargs["storage_engine"] = _PrivateSQLiteStorage(name, workdir=d)
    return Client(name, api_id=api_id, api_hash=api_hash.strip(), bot_token=bot_token.strip(),
                  **kwargs)
