"""Reading the command line: group ids are negative numbers, yet options must still be options.

Click reads `-1001500` as an (unknown) option. The old fix told Click to ignore unknown options,
which swallowed typos (`roster --jsn -1500` blamed the id, `roster -h` was read as a chat). Here
only a token that is a bare negative number and not an option's value is taken as a positional
value; everything else is parsed exactly as Click would, so `-h` is help and `--jsn` is "no such
option" with a git-style suggestion. Chat ids are validated here, once, for every command, so a
bad one is a usage error (exit 2) before any store or connection is opened.
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from typing import Dict, List, Optional

import typer
from typer.core import TyperCommand

from tgsync_cli.core.chat_ids import chat_problem

try:  # typer ≥ 0.20 vendors click
    from typer._click.exceptions import ClickException, NoSuchOption, UsageError  # noqa: F401 (ClickException: base.py)
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import (  # type: ignore[assignment]  # noqa: F401
        ClickException,
        NoSuchOption,
        UsageError,
    )

NEGATIVE = re.compile(r"^-\d+$")


class Command(TyperCommand):
    """A Typer command whose bare negative numbers are values, not options."""

    def parse_args(self, ctx, args: List[str]) -> List[str]:
        takes_value = self._options(ctx)
        options: List[str] = []
        positionals: List[str] = []
        rest = list(args)
        while rest:
            token = rest.pop(0)
            if token == "--":
                positionals += rest
                break
            if NEGATIVE.match(token) or not token.startswith("-") or token == "-":
                positionals.append(token)
                continue
            options.append(token)
            name = token.split("=", 1)[0]
            if name not in takes_value and name not in ctx.help_option_names and not ctx.resilient_parsing:
                known = [o for o in takes_value if o.startswith("--")] + list(ctx.help_option_names)
                raise _NoSuchOption(name, message=f"No such option: {_cut(name)}",
                                    possibilities=get_close_matches(name, known, n=1), ctx=ctx)
            if takes_value.get(name) and "=" not in token and rest:
                options.append(rest.pop(0))  # the option's value, even when it looks negative
        reordered = options + (["--"] + positionals if positionals else [])
        return super().parse_args(ctx, reordered)

    def _options(self, ctx) -> Dict[str, bool]:
        """Each option string of this command → whether it takes a value (flags and counts do not)."""
        out: Dict[str, bool] = {}
        for param in self.get_params(ctx):
            if param.param_type_name == "option":
                takes = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
                for opt in [*param.opts, *param.secondary_opts]:
                    out[opt] = takes
        return out


class _NoSuchOption(NoSuchOption):
    """Click's own error for an unknown option, with a git-style suggestion."""

    def format_message(self) -> str:
        hint = f" (did you mean {self.possibilities[0]}?)" if self.possibilities else ""
        return f"{self.message}{hint}"


def use_command_class(app: typer.Typer) -> None:
    """Every registered command parses with `Command`."""
    for info in app.registered_commands:
        info.cls = Command


# -- values ----------------------------------------------------------------------------------
def check_chat(value: Optional[str], *, club_ids: bool = True, what: str = "CHAT") -> Optional[str]:
    """A chat id (-100…), an @username, or (where the store is asked) a club_ id; else exit 2."""
    if value is None:
        return None
    text = value.strip()
    problem = chat_problem(text, club_ids)
    if problem:
        raise typer.BadParameter(problem, param_hint=what)
    return text


def chat_callback(value: Optional[str]) -> Optional[str]:
    return check_chat(value)


def live_chat_callback(value: Optional[str]) -> Optional[str]:
    return check_chat(value, club_ids=False)


def history_chat_callback(value: Optional[str]) -> Optional[str]:
    return check_chat(value, what="--chat")


def _cut(text: str, limit: int = 40) -> str:
    """Quoted input in an error stays short: a pasted megabyte must not become the message."""
    return text if len(text) <= limit else text[:limit] + "…"


def choice_callback(*allowed: str):
    """A value from a fixed list (the roster's statuses, roles, sources); else exit 2."""

    def check(value: Optional[str]) -> Optional[str]:
        if value is None or value in allowed:
            return value
        close = get_close_matches(value, allowed, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise typer.BadParameter(f"{_cut(value)!r}: expected one of {', '.join(allowed)}{hint}")

    return check


def since_callback(value: Optional[str]):
    """YYYY-MM-DD or an ISO date-time (UTC, as the store keeps them); else exit 2."""
    if value is None:
        return None
    from datetime import datetime, timezone

    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{_cut(value)!r}: expected a date like 2025-03-01 or "
                                 "2025-03-01T07:00:00Z") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat()


def telegram_id_callback(value: Optional[int]) -> Optional[int]:
    if value is not None and not 0 < value < 2 ** 63:
        raise typer.BadParameter(f"{value}: a person's Telegram id is a positive 64-bit number")
    return value
