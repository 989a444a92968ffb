"""Offline commands: simulate, demo, replay, roster, clubs."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Optional

import typer
from typing_extensions import Annotated

from tgsync_cli.cli import render
from tgsync_cli.cli.args import chat_callback, choice_callback, since_callback
from tgsync_cli.cli.base import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    app,
    explicit_store,
    guarded,
    lazy_module,
    open_existing_store,
    open_store_checked,
    settings_for,
)
from tgsync_cli.core.evidence import ROUTES

core = lazy_module("tgsync_cli.app")

CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV on stdout")]


@contextmanager
def _scratch_store(config, store):
    """The store a simulation writes to: a fresh temporary one, thrown away afterwards, unless
    --store names one. A fictional club must never land in the configured (production) store."""
    if explicit_store(store):
        settings = settings_for(config, store)
        with open_store_checked(settings) as st:
            yield settings, st, st.uri_label
        return
    with tempfile.TemporaryDirectory(prefix="tgsync-sim-") as tmp:
        settings = settings_for(config, f"file:{tmp}/store")
        with open_store_checked(settings) as st:
            yield settings, st, "a temporary store (discarded afterwards; --store keeps it)"


@app.command()
@guarded
def simulate(file: Annotated[str, typer.Argument(help="scenario JSON (format: docs/scenarios.md)")],
             json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Run a scenario on the built-in Telegram simulator (on a temporary store unless --store)."""
    from tgsync_cli.sources.scenario import load_scenario

    load_scenario(file)  # a broken scenario is refused before any store is opened or created
    with _scratch_store(config, store) as (settings, st, _):
        result = core.simulate(file, st, settings)
    _show_simulation(result, json_out)


@app.command()
@guarded
def demo(json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """A club's first week on the simulator, on a temporary store unless --store."""
    with _scratch_store(config, store) as (settings, st, where):
        result = core.simulate(core.BUNDLED_DEMO, st, settings)
    if not json_out:
        render.console.print(render.line(("Demo: ", "bold"), f"{core.BUNDLED_DEMO.name} on {where}"))
    _show_simulation(result, json_out)


def _show_simulation(result, json_out: bool) -> None:
    if json_out:
        render.print_json(result.as_json())
        return
    for club in result.clubs:
        render.console.print(render.roster_table(club))
    render.console.print(render.sent_table(result.sent))
    for n in result.notes:
        render.console.print(render.note("note", n))
    render.console.print(render.line(
        f"updates delivered: {result.delivered}; lost while the bot was offline "
        f"(Telegram keeps no backlog for them): {result.lost}; store round trips (db_ops): {result.db_ops}"))


@app.command()
@guarded
def replay(file: Annotated[str, typer.Argument(help="JSON Lines of Bot API Update objects")],
           json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Apply Telegram Bot API updates offline; invalid lines are reported with their number."""
    settings = settings_for(config, store)
    with open_store_checked(settings) as st:
        report = core.replay(file, st, settings)
    if json_out:
        render.print_json({"applied": report.applied, "events": report.events,
                           "invalid": [{"line": n, "error": e} for n, e in report.invalid],
                           "skipped": report.notes})
    else:
        render.console.print(f"applied {report.applied} updates ({report.events} events)")
        for note in report.notes:
            render.console.print(render.note("skipped", note))
    for n, e in report.invalid:
        render.err_console.print(render.line(f"{file}:{n}: {e}"), soft_wrap=True)
    if report.invalid:
        n = len(report.invalid)
        render.err_console.print(f"error: {n} invalid line{'s' if n != 1 else ''} not applied "
                                 f"(the {report.applied} valid ones were)", markup=False,
                                 highlight=False)
        raise typer.Exit(1)


@app.command()
@guarded
def roster(chat: Annotated[str, typer.Argument(help="chat id (-100…), @username or club_ id",
                                               callback=chat_callback)],
           status: Annotated[Optional[str], typer.Option(
               "--status", help="active, left or kicked",
               callback=choice_callback("active", "left", "kicked"))] = None,
           role: Annotated[Optional[str], typer.Option(
               "--role", help="organizer or member", callback=choice_callback("organizer", "member"))] = None,
           source: Annotated[Optional[str], typer.Option(
               "--source", help="how they were found: " + ", ".join(ROUTES),
               callback=choice_callback(*ROUTES))] = None,
           since: Annotated[Optional[str], typer.Option(
               "--since", help="status changed on or after this date (UTC), e.g. 2025-03-01",
               callback=since_callback)] = None,
           json_out: JsonOpt = False, csv_out: CsvOpt = False,
           config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """The club's members from the store (never creates a store)."""
    with open_existing_store(settings_for(config, store)) as st:
        club = core.roster(st, chat)
    club["members"] = [m for m in club["members"] if _wanted(m, status, role, source, since)]
    if json_out:
        render.print_json(club)
    elif csv_out:
        print(render.roster_csv(club), end="")
    else:
        render.console.print(render.roster_table(club))


def _wanted(m: dict, status, role, source, since) -> bool:
    """The roster filters; `since` compares the stored UTC time of the last status change."""
    at = str(m.get("status_at") or "").rstrip("Z")
    return ((status is None or m.get("status") == status) and (role is None or m.get("role") == role)
            and (source is None or m.get("source") == source) and (since is None or bool(at and at >= since)))


@app.command()
@guarded
def clubs(json_out: JsonOpt = False, csv_out: CsvOpt = False, config: ConfigOpt = None,
          store: StoreOpt = None) -> None:
    """Every club with its sync figures (never creates a store)."""
    with open_existing_store(settings_for(config, store)) as st:
        rows = core.clubs(st)
        label = st.uri_label
    if json_out:
        render.print_json(rows)
    elif csv_out:
        print(render.clubs_csv(rows), end="")
    elif not rows:
        render.console.print(render.line(render.EMPTY_STORE.format(store=label)))
    else:
        render.console.print(render.clubs_table(rows))
