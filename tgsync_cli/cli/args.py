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
from typing import Any, Dict, List, Optional

import typer
from typer.core import TyperCommand, TyperGroup
from typing_extensions import Annotated

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
    """A Typer command whose bare negative numbers are values, not options. Every command also
    takes `--quiet` (only errors: for scripts and cron), and refuses `--json` with `--csv`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not any(p.name == "quiet" for p in self.params):
            self.params.append(_quiet_option())

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
        rest_args = super().parse_args(ctx, reordered)
        if ctx.params.get("json_out") and ctx.params.get("csv_out") and not ctx.resilient_parsing:
            raise UsageError("--json and --csv: choose one", ctx=ctx)
        return rest_args

    def collect_usage_pieces(self, ctx) -> List[str]:
        """`tgsync roster [OPTIONS] CHAT`, as README and the error messages spell it (Typer
        writes a required argument as `{CHAT}`)."""
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p
                for p in super().collect_usage_pieces(ctx)]

    def format_help(self, ctx, formatter) -> None:
        _plain_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)

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


class Group(TyperGroup):
    """`tgsync -h` and `tgsync store -h`: flags without `<bool>`, as in every command's help."""

    def format_help(self, ctx, formatter) -> None:
        _plain_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


def use_command_class(app: typer.Typer) -> None:
    """Every registered command parses with `Command`, sub-apps' (`store copy`) included."""
    for info in app.registered_commands:
        info.cls = Command
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_command_class(group.typer_instance)


def _quiet_option():
    """`--quiet/-q` as Typer builds an option (its help row and completion like the others)."""
    probe = typer.Typer()

    @probe.command()
    def _probe(quiet: Annotated[bool, typer.Option(
            "--quiet", "-q", help="only errors: no tables, notes or progress (--json/--csv still print)")]
            = False) -> None:
        pass  # pragma: no cover - never run; it only shapes the option

    from typer.main import get_command

    option = get_command(probe).params[0]
    option.expose_value = False
    option.callback = _be_quiet
    return option


def _be_quiet(ctx, param, value: bool) -> bool:
    if value:
        import logging

        from tgsync_cli.cli import render

        render.console.quiet = render.err_console.quiet = True
        logging.getLogger("tgsync").setLevel(logging.ERROR)
    return value


def _plain_flags(params) -> None:
    """A flag takes no value: its help row shows no `<bool>` (`--json`, not `--json <bool>`);
    a positional's name (CHAT, FILE) already says what it is, so no `<str>` either."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None


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


def choice_option(name: str, help: str, *allowed: str, metavar: Optional[str] = None) -> Any:
    """An option with a fixed set of values: shown as `[a|b|c]` in help (or, for a long list,
    a METAVAR and the values in the help text), completed by the shell, checked with a
    did-you-mean."""
    if metavar is not None:
        help = f"{help}: {', '.join(allowed)}"
    return typer.Option(name, help=help, metavar=metavar or "[" + "|".join(allowed) + "]",
                        callback=choice_callback(*allowed),
                        autocompletion=lambda incomplete="": [a for a in allowed if a.startswith(incomplete)])


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
    """A person's Telegram id (a positive 64-bit number); else exit 2, before any store opens."""
    if value is not None and not 0 < value < 2 ** 63:
        raise typer.BadParameter(f"{_cut(str(value))}: a person's Telegram id is a positive 64-bit number",
                                 param_hint="TELEGRAM_ID")
    return value


# The one declaration of each positional every command shares: same check, same name in usage.
ChatArg = Annotated[str, typer.Argument(metavar="CHAT", help="chat id (-100…), @username or club_ id",
                                        callback=chat_callback, show_default=False)]
LiveChatArg = Annotated[str, typer.Argument(metavar="CHAT", help="group chat id (-100…) or @username",
                                            callback=live_chat_callback, show_default=False)]
TelegramIdArg = Annotated[int, typer.Argument(metavar="TELEGRAM_ID", help="the person's Telegram user id",
                                              callback=telegram_id_callback, show_default=False)]
