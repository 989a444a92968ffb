"""`tgsync store copy`: every club, account, log entry and departure note from one store to another."""

from __future__ import annotations

import json
import os
from typing import Optional, Tuple

import typer
from typing_extensions import Annotated

from tgsync_cli.cli.args import Group
from tgsync_cli.cli.base import ConfigOpt, JsonOpt, app, guarded, settings_for
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.stores.common import DEFAULT_DB, redact_uri

store_app = typer.Typer(cls=Group, no_args_is_help=True, help="Work on a whole store (copy it to another).")
app.add_typer(store_app, name="store")


@store_app.command("copy")
@guarded
def copy(source: Annotated[str, typer.Option("--from", metavar="URI", help="store URI to read (left unchanged)")],
         target: Annotated[str, typer.Option("--to", metavar="URI", help="store URI to write (created if missing)")],
         database: Annotated[Optional[str], typer.Option(
             "--database", metavar="NAME", help=f"MongoDB database name (default store.database, else {DEFAULT_DB})")] = None,
         json_out: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Copy every club, account, log entry and departure note; running it twice changes nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tgsync_cli.stores import open_store
    from tgsync_cli.stores.copy import copy_store

    if same_store(source, target, database or DEFAULT_DB):
        raise typer.BadParameter("--from and --to name the same store", param_hint="--to")
    if database is None:  # the configured database name, read only once the URIs are sane
        database = settings_for(config, None).store.database
    err = Console(stderr=True)
    try:
        with open_store(source, database, create=False) as src, open_store(target, database) as dst:
            with Progress(TextColumn("copying"), BarColumn(), MofNCompleteColumn(), console=err,
                          transient=True, disable=json_out) as bar:
                task = bar.add_task("copy", total=None)
                rep = copy_store(src, dst, lambda done, total: bar.update(task, completed=done, total=total))
    except TgsyncError as exc:  # a driver's message may quote a URI whole: never its password
        raise type(exc)(_scrub(str(exc), source, target)) from None
    if json_out:
        print(json.dumps(rep.as_json()))
        return
    from tgsync_cli.cli.render import line

    Console().print(line(f"copied {rep.clubs} club(s), {rep.members} membership(s), {rep.users} account(s), "
                    f"{rep.membership_log} log entr{'y' if rep.membership_log == 1 else 'ies'}, "
                    f"{rep.departures} departure note(s) from {redact_uri(source)} "
                         f"to {redact_uri(target)}"))


def _scrub(text: str, *uris: str) -> str:
    for uri in uris:
        text = text.replace(uri, redact_uri(uri))
        rest = uri.split("://", 1)[1] if "://" in uri else ""
        if "@" in rest:
            userinfo = rest.rsplit("@", 1)[0]
            for part in {userinfo, *userinfo.split(":", 1)[1:]}:
                if part:
                    text = text.replace(part, "***")
    return text


def same_store(a: str, b: str, database: str) -> bool:
    """Whether two URIs name one store: the same directory however it is written (`file:./s`,
    `file:s/`, a symlink), or the same MongoDB servers and database whatever the order of hosts,
    options or credentials."""
    return _identity(a.strip(), database) == _identity(b.strip(), database)


def _identity(uri: str, database: str) -> Tuple:
    if uri.startswith("file:"):
        return ("file", os.path.realpath(os.path.expanduser(uri[len("file:"):] or ".")))
    if uri.startswith("memory:"):
        name = uri[len("memory:"):]
        return ("memory", name) if name else ("memory", object())  # `memory:` is new each time
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        try:
            from pymongo.uri_parser import parse_uri

            parsed = parse_uri(uri, connect_timeout=1) if uri.startswith("mongodb+srv") else parse_uri(uri)
        except Exception:  # an unparsable URI is refused when opened, with its own message
            return ("text", uri)
        hosts = tuple(sorted((h.lower(), p or 27017) for h, p in parsed["nodelist"]))
        return ("mongodb", hosts, parsed.get("database") or database)
    return ("text", uri)
