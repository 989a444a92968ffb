"""`tgsync store copy`: every club, account, log entry and departure note from one store to another."""

from __future__ import annotations

import json
import os
from typing import Optional, Tuple

import typer
from typing_extensions import Annotated

from tgsync_cli.cli.args import Group
from tgsync_cli.cli.base import ConfigOpt, JsonOpt, StoreOpt, app, guarded, settings_for
from tgsync_cli.core.errors import TgsyncError
from tgsync_cli.stores.common import DEFAULT_DB, redact_uri

store_app = typer.Typer(cls=Group, no_args_is_help=True,
                        help="Work on a whole store: create tgsync's indexes, copy it to another.")
app.add_typer(store_app, name="store")


@store_app.command("init")
@guarded
def init(config: ConfigOpt = None, store: StoreOpt = None, json_out: JsonOpt = False) -> None:
    """Create tgsync's indexes in a MongoDB database (and nothing else); running it twice changes nothing."""
    from rich.console import Console
    from rich.markup import escape

    from tgsync_cli.ops.store_init import init_store

    settings = settings_for(config, store)
    rep = init_store(settings.store.uri, settings.store.database, settings.store.time_format)
    if json_out:
        print(json.dumps(rep.as_json()))
    elif rep.embedded:
        Console().print(f"{escape(rep.store)}: an embedded store makes its own tables; nothing to create")
    else:
        out = Console()
        out.print(f"database {escape(str(rep.database))} at {escape(rep.store)}:")
        for r in rep.rows:
            detail = f" — {r['detail']}" if r["detail"] else ""
            note = " (kept as it is: tgsync never drops an index)" if r["state"] == "differs" else ""
            if r["state"] == "differs" and "not unique" in r["detail"] and "unique" in r["index"]:
                note += "; tgsync's writes need it unique: replace it, then run store init again"
            out.print(f"  {r['state']:8} {escape(r['index'])}{escape(detail)}{note}")
        out.print(f"created {len(rep.created)} index(es)" if rep.created else "nothing to create")
    if rep.failed:
        raise TgsyncError(f"{len(rep.failed)} index(es) could not be built: "
                          f"{rep.failed[0]['index']}: {rep.failed[0]['detail']} (run `tgsync doctor` "
                          "to see the documents in the way)")


@store_app.command("copy")
@guarded
def copy(source: Annotated[str, typer.Option("--from", metavar="URI", help="store URI to read (left unchanged)")],
         target: Annotated[str, typer.Option("--to", metavar="URI", help="store URI to write (created if missing)")],
         from_database: Annotated[Optional[str], typer.Option(
             "--from-database", metavar="NAME",
             help="the source's database when its URI names none (default store.database)")] = None,
         to_database: Annotated[Optional[str], typer.Option(
             "--to-database", metavar="NAME",
             help="the target's database when its URI names none (default store.database)")] = None,
         dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would change, write nothing")] = False,
         json_out: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Copy every club, account, log entry and departure note, merging into clubs the target
    already has (member by member); running it twice changes nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tgsync_cli.stores import open_store
    from tgsync_cli.stores.copy import copy_store
    from tgsync_cli.stores.copy_merge import plan_copy

    sides = (_side(source, from_database, "--from-database"), _side(target, to_database, "--to-database"))
    if same_store(source, sides[0], target, sides[1]):
        raise typer.BadParameter("--from and --to name the same store", param_hint="--to")
    if from_database is None or to_database is None:  # the configured name, once the URIs are sane
        configured = settings_for(config, None).store.database
        from_database, to_database = from_database or configured, to_database or configured
    err = Console(stderr=True)
    try:
        with open_store(source, from_database, create=False) as src, \
                open_store(target, to_database, create=not dry_run) as dst:
            if dry_run:
                plan = plan_copy(src, dst)
            else:
                with Progress(TextColumn("copying"), BarColumn(), MofNCompleteColumn(), console=err,
                              transient=True, disable=json_out) as bar:
                    task = bar.add_task("copy", total=None)
                    rep = copy_store(src, dst, lambda done, total: bar.update(task, completed=done, total=total))
    except TgsyncError as exc:  # a driver's message may quote a URI whole: never its password
        raise type(exc)(_scrub(str(exc), source, target)) from None
    if dry_run:
        if json_out:
            print(json.dumps(plan.as_json()))
        else:
            from tgsync_cli.cli.render import line as literal

            for text in plan.lines():  # club names came from Telegram or the app: literal text
                Console().print(literal(text), soft_wrap=True)
        return
    if json_out:
        print(json.dumps(rep.as_json()))
        return
    from tgsync_cli.cli.render import line

    Console().print(line(f"copied {rep.clubs} club(s), {rep.members} membership(s), {rep.users} account(s), "
                    f"{rep.membership_log} log entr{'y' if rep.membership_log == 1 else 'ies'}, "
                    f"{rep.departures} departure note(s) from {redact_uri(source)} "
                         f"to {redact_uri(target)}"))


def _side(uri: str, database: Optional[str], option: str) -> str:
    """Each side's own database: its URI's, else its option. Both naming different ones is a
    usage error, as for store.database."""
    from tgsync_cli.stores.mongo_database import DatabaseConflict, database_for

    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        return database or DEFAULT_DB
    try:
        return database_for(uri, database, option)
    except DatabaseConflict as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


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


def same_store(a: str, a_database: str, b: str, b_database: str) -> bool:
    """Whether two URIs name one store: the same directory however it is written (`file:./s`,
    `file:s/`, a symlink), or the same MongoDB servers and database whatever the order of hosts,
    options or credentials."""
    return _identity(a.strip(), a_database) == _identity(b.strip(), b_database)


def _identity(uri: str, database: str) -> Tuple:
    if uri.startswith("file:"):
        return ("file", os.path.realpath(os.path.expanduser(uri[len("file:"):] or ".")), database)
    if uri.startswith("memory:"):
        name = uri[len("memory:"):]
        return ("memory", name, database) if name else ("memory", object())  # `memory:` is new each time
    if uri.startswith(("mongodb://", "mongodb+srv://")):
        try:
            from pymongo.uri_parser import parse_uri

            parsed = parse_uri(uri, connect_timeout=1) if uri.startswith("mongodb+srv") else parse_uri(uri)
        except Exception:  # an unparsable URI is refused when opened, with its own message
            return ("text", uri, database)
        hosts = tuple(sorted((h.lower(), p or 27017) for h, p in parsed["nodelist"]))
        return ("mongodb", hosts, database)
    return ("text", uri, database)
