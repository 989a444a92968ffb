"""Settings: `tgsync.toml`, then `TGSYNC_<SECTION>_<KEY>` environment overrides, then `--store`.

Every bad value is refused with a one-line ConfigError naming the key; secrets are never echoed.
"""

from __future__ import annotations

import difflib
import os
import stat
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from tgsync_cli.core.errors import ConfigError
from tgsync_cli.stores.uri_redaction import uri_holds_secrets, uri_secrets

SECRETS = {("telegram", "api_hash"), ("telegram", "bot_token")}


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v.strip())
    raise ValueError("expected an integer")


def _pos(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a positive number")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError("expected a positive number") from None
    if f <= 0:
        raise ValueError("expected a positive number")
    return f


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _choice(*options: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return v
    return check


def _lower(conv):
    """Log levels are words, not identifiers: INFO and info mean the same."""
    def check(v: Any):
        return conv(v.strip().lower() if isinstance(v, str) else v)
    return check


def parse_listen(v: Any) -> Tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets: [::1]:9108) → (host, port)."""
    text = _str(v).strip()
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("expected HOST:PORT, such as 127.0.0.1:9108")
    return host, int(port)


def _listen(v: Any) -> str:
    parse_listen(v)
    return str(v).strip()


def _opt(conv):
    def check(v: Any):
        return None if v in (None, "") else conv(v)
    return check


SCHEMA: Dict[Tuple[str, str], Tuple[Callable[[Any], Any], Any]] = {
    ("store", "uri"): (_str, "file:./tgsync-data"),
    # None: not set, so a mongodb:// URI's own database (or ayda_run) applies; see stores/mongo_database
    ("store", "database"): (_opt(_str), None),
    ("store", "time_format"): (_choice("auto", "date", "iso"), "auto"),
    ("telegram", "api_id"): (_opt(_int), None),
    ("telegram", "api_hash"): (_opt(_str), None),
    ("telegram", "bot_token"): (_opt(_str), None),
    ("telegram", "bot_username"): (_opt(_str), None),
    ("telegram", "session_dir"): (_str, "./.tgsync-session"),
    ("telegram", "max_flood_wait"): (_pos, 60.0),
    ("bot", "welcome_dm"): (_bool, False),
    ("cache", "backend"): (_choice("memory", "redis"), "memory"),
    ("cache", "ttl_seconds"): (_pos, 3600.0),
    ("cache", "redis_url"): (_str, "redis://127.0.0.1:6379/0"),
    ("queue", "backend"): (_choice("inprocess", "celery"), "inprocess"),
    ("queue", "broker_url"): (_str, "redis://127.0.0.1:6379/1"),
    ("queue", "max_pending"): (_int, 10000),
    ("sync", "last_seen_flush_seconds"): (_pos, 900.0),
    ("sync", "reconcile_threshold"): (_int, 0),
    ("log", "json"): (_bool, False),
    # health and metrics endpoints of serve and worker: off unless an address is given
    ("metrics", "listen"): (_opt(_listen), None),
    ("metrics", "worker_listen"): (_opt(_listen), None),
    ("metrics", "allow_remote"): (_bool, False),
    ("metrics", "stuck_seconds"): (_pos, 120.0),
    ("log", "level"): (_lower(_choice("debug", "info", "warning", "error")), "info"),
}

SECTIONS = {section for section, _ in SCHEMA}
# TGSYNC_* names that are not settings: test and debugging switches
NOT_SETTINGS = {"test", "debug", "fake", "bench"}


# One frozen dataclass per section: the keys and defaults are SCHEMA's (load_settings checks
# every value with SCHEMA's converter, then builds these), so code reads typed attributes.
@dataclass(frozen=True)
class StoreSettings:
    uri: str
    database: Optional[str]  # None: a mongodb:// URI's own database (or ayda_run) applies
    time_format: str  # auto | date | iso


@dataclass(frozen=True)
class TelegramSettings:
    api_id: Optional[int]
    api_hash: Optional[str] = field(repr=False)
    bot_token: Optional[str] = field(repr=False)
    bot_username: Optional[str]
    session_dir: str
    max_flood_wait: float


@dataclass(frozen=True)
class BotSettings:
    welcome_dm: bool


@dataclass(frozen=True)
class CacheSettings:
    backend: str  # memory | redis
    ttl_seconds: float
    redis_url: str


@dataclass(frozen=True)
class QueueSettings:
    backend: str  # inprocess | celery
    broker_url: str
    max_pending: int


@dataclass(frozen=True)
class SyncSettings:
    last_seen_flush_seconds: float
    reconcile_threshold: int


@dataclass(frozen=True)
class LogSettings:
    json: bool
    level: str  # debug | info | warning | error


@dataclass(frozen=True)
class MetricsSettings:
    listen: Optional[str]         # HOST:PORT of serve's health and metrics endpoints
    worker_listen: Optional[str]  # the same for a Celery worker
    allow_remote: bool
    stuck_seconds: float


@dataclass(frozen=True)
class Settings:
    """settings.store.uri, settings.telegram.api_hash…; repr hides secrets."""

    store: StoreSettings
    telegram: TelegramSettings
    bot: BotSettings
    cache: CacheSettings
    queue: QueueSettings
    sync: SyncSettings
    log: LogSettings
    metrics: MetricsSettings
    source: Optional[str] = None  # the config file read, if any

    def __repr__(self) -> str:
        return f"Settings(source={self.source!r})"

    def value(self, section: str, key: str) -> Any:
        return getattr(getattr(self, section), key)


_SECTION_TYPES: Dict[str, type] = {
    "store": StoreSettings, "telegram": TelegramSettings, "bot": BotSettings, "cache": CacheSettings,
    "queue": QueueSettings, "sync": SyncSettings, "log": LogSettings, "metrics": MetricsSettings,
}


def _build(values: Mapping[Tuple[str, str], Any], source: Optional[str]) -> Settings:
    sections = {name: kind(**{k: v for (s, k), v in values.items() if s == name})
                for name, kind in _SECTION_TYPES.items()}
    return Settings(**sections, source=source)


def load_settings(path: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                  store: Optional[str] = None, warn: Callable[[str], None] | None = None) -> Settings:
    env = os.environ if env is None else env
    values: Dict[Tuple[str, str], Any] = {k: d for k, (_, d) in SCHEMA.items()}
    explicit = path is not None
    file = Path(path or "tgsync.toml")
    source = None
    if file.exists():
        source = str(file)
        raw = _read_toml(file)
        refuse_if_anyone_can_change(file, raw)
        for section, table in raw.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{file}: [{section}] must be a table")
            for key, v in table.items():
                _apply(values, section, key, v, f"{file}: {section}.{key}")
        verdict = permission_verdict(file, raw)
        if verdict:
            _warn(warn, f"warning: {verdict[1]}; run: chmod 600 {file}")
    elif explicit:
        raise ConfigError(f"config file {file} not found")
    for name, v in sorted(env.items()):
        if not name.startswith("TGSYNC_"):
            continue
        section, _, key = name[len("TGSYNC_"):].lower().partition("_")
        if section in SECTIONS:
            _apply(values, section, key, v, name)
        elif section not in NOT_SETTINGS:  # a typo (TGSYNC_STOR_URI) must not pass in silence
            close = difflib.get_close_matches(section, SECTIONS, n=1)
            hint = f" (did you mean TGSYNC_{close[0].upper()}_{key.upper()}?)" if close else ""
            _warn(warn, f"warning: {name} is not a tgsync setting and is ignored{hint}")
    if store is not None:
        _apply(values, "store", "uri", store, "--store")
    _check_database(values)
    settings = _build(values, source)
    remember_secrets(settings)
    return settings


def _check_database(values: Dict[Tuple[str, str], Any]) -> None:
    """A URI naming one database and store.database another: refused before anything connects."""
    uri = values[("store", "uri")]
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        from tgsync_cli.stores.mongo_database import database_for

        database_for(uri, values[("store", "database")])


def _read_toml(file: Path) -> dict:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read ({exc.strerror})") from exc


def _apply(values, section: str, key: str, v: Any, where: str) -> None:
    if (section, key) not in SCHEMA:
        raise ConfigError(f"{where}: unknown setting {section}.{key}")
    conv, _ = SCHEMA[(section, key)]
    try:
        values[(section, key)] = conv(v)
    except ValueError as exc:
        shown = "***" if (section, key) in SECRETS else repr(v)[:40]
        raise ConfigError(f"{where}: {exc} (got {shown})") from None


def _warn(warn, message: str) -> None:
    (warn or (lambda m: print(m, file=sys.stderr)))(message)


def holds_secrets(raw: dict) -> bool:
    section = raw.get("store")
    store = section if isinstance(section, dict) else {}
    return (any(k in (raw.get(s) or {}) for s, k in SECRETS if isinstance(raw.get(s), dict))
            or uri_holds_secrets(str(store.get("uri", ""))))


def refuse_if_anyone_can_change(file: Path, raw: dict) -> None:
    """A config holding secrets that every user may rewrite is refused, not warned about:
    anyone on the machine could point the store or the bot elsewhere and collect the
    credentials (or the roster) on the next start."""
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError:
        return
    if mode & stat.S_IWOTH and holds_secrets(raw):
        raise ConfigError(f"{file} holds secrets and can be changed by any user (mode {mode:o}); "
                          f"run: chmod 600 {file}")


def permission_verdict(file: Path, raw: Optional[dict] = None) -> Optional[Tuple[str, str]]:
    """("fail" | "warn", why) when other users can change the config, or read the secrets in it.

    The one verdict every command (a warning line) and `doctor` (a check) give: a config others
    can write is dangerous with or without secrets (they can point the store anywhere); one
    others can read is a problem only when it holds secrets.
    """
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except OSError:
        return None
    if raw is None:
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8", errors="replace"))
        except (OSError, tomllib.TOMLDecodeError):
            raw = {}
    secret = holds_secrets(raw)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "fail", f"{file} can be changed by other users (mode {mode:o})"
    if secret and mode & (stat.S_IRGRP | stat.S_IROTH):
        return "fail", f"{file} holds secrets and is readable by others (mode {mode:o})"
    return None


# -- redaction ------------------------------------------------------------------------------------
_KNOWN_SECRETS: set = set()


def remember_secrets(settings: Settings) -> None:
    """Every secret value loaded is remembered so `redact` can scrub it from any text."""
    for section, key in SECRETS:
        v = settings.value(section, key)
        if v and len(str(v)) >= 4:
            _KNOWN_SECRETS.add(str(v))
    # the password and every query value not known to be harmless (key-file passwords, tokens)
    _KNOWN_SECRETS.update(uri_secrets(str(settings.store.uri or "")))


def forget_secrets() -> None:
    """Empty the redaction list. It lives as long as the process (one command); something that
    loads several unrelated settings in one process (a test run) starts each afresh with this,
    or values such as "none" from one would be scrubbed from every later message."""
    _KNOWN_SECRETS.clear()


def redact(text: str) -> str:
    for s in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        text = text.replace(s, "***")
    return text
