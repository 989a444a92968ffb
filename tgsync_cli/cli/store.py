"""`tgsync store copy`: every club, account, log entry and departure note from one store to another."""

from __future__ import annotations

import json

import typer
from typing_extensions import Annotated

from tgsync_cli.cli.args import Group
from tgsync_cli.cli.base import JsonOpt, app, guarded
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.stores.common import DEFAULT_DB, redact_uri

store_app = typer.Typer(cls=Group, no_args_is_help=True, help="Work on a whole store (copy it to another).")
app.add_typer(store_app, name="store")


@store_app.command("copy")
@guarded
def copy(source: Annotated[str, typer.Option("--from", help="store URI to read (left unchanged)")],
         target: Annotated[str, typer.Option("--to", help="store URI to write (created if missing)")],
         database: Annotated[str, typer.Option("--database", help="MongoDB database name")] = DEFAULT_DB,
         json_out: JsonOpt = False) -> None:
    """Copy every club, account, log entry and departure note; running it twice changes nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tgsync_cli.stores import open_store
    from tgsync_cli.stores.copy import copy_store

    if source.strip() == target.strip():
        raise typer.BadParameter("--from and --to name the same store", param_hint="--to")
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
