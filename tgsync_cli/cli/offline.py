"""Offline commands: simulate, demo, replay, roster, clubs."""

from __future__ import annotations

import tempfile

import typer
from typing_extensions import Annotated

from tgsync_cli.cli import render
from tgsync_cli.cli.base import ConfigOpt, JsonOpt, StoreOpt, app, guarded, settings_for
from tgsync_cli import app as core


@app.command()
@guarded
def simulate(file: Annotated[str, typer.Argument(help="scenario JSON (SPEC §5)")],
             json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Run a scenario on the built-in Telegram simulator."""
    settings = settings_for(config, store)
    with core.store_from(settings) as st:
        result = core.simulate(file, st, settings)
    _show_simulation(result, json_out)


@app.command()
@guarded
def demo(json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """A club's first week on the simulator, on a fresh embedded store."""
    with tempfile.TemporaryDirectory(prefix="tgsync-demo-") as tmp:
        settings = settings_for(config, store or f"file:{tmp}/store")
        with core.store_from(settings) as st:
            result = core.simulate(core.BUNDLED_DEMO, st, settings)
        if not json_out:
            render.console.print(f"[bold]Demo:[/] {core.BUNDLED_DEMO.name} on {st.uri_label}")
        _show_simulation(result, json_out)


def _show_simulation(result, json_out: bool) -> None:
    if json_out:
        render.print_json(result.as_json())
        return
    for club in result.clubs:
        render.console.print(render.roster_table(club))
    render.console.print(render.sent_table(result.sent))
    for n in result.notes:
        render.console.print(f"[yellow]note:[/] {n}")
    render.console.print(f"updates delivered: {result.delivered}, lost while offline: {result.lost}, "
                         f"db_ops: {result.db_ops}")


@app.command()
@guarded
def replay(file: Annotated[str, typer.Argument(help="JSON Lines of Bot API Update objects")],
           json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Apply Telegram Bot API updates offline; invalid lines are reported with their number."""
    settings = settings_for(config, store)
    with core.store_from(settings) as st:
        report = core.replay(file, st, settings)
    if json_out:
        render.print_json({"applied": report.applied, "events": report.events,
                           "invalid": [{"line": n, "error": e} for n, e in report.invalid],
                           "skipped": report.notes})
    else:
        render.console.print(f"applied {report.applied} updates ({report.events} events)")
        for note in report.notes:
            render.console.print(f"[yellow]skipped:[/] {note}")
    for n, e in report.invalid:
        render.err_console.print(f"{file}:{n}: {e}", markup=False, highlight=False, soft_wrap=True)
    if report.invalid:
        n = len(report.invalid)
        render.err_console.print(f"error: {n} invalid line{'s' if n != 1 else ''} not applied "
                                 f"(the {report.applied} valid ones were)", markup=False,
                                 highlight=False)
        raise typer.Exit(1)


@app.command()
@guarded
def roster(chat: Annotated[str, typer.Argument(help="chat id, @username or club_ id")],
           json_out: JsonOpt = False,
           csv_out: Annotated[bool, typer.Option("--csv", help="CSV on stdout")] = False,
           config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """The club's members from the store."""
    with core.store_from(settings_for(config, store)) as st:
        club = core.roster(st, chat)
    if json_out:
        render.print_json(club)
    elif csv_out:
        print(render.roster_csv(club), end="")
    else:
        render.console.print(render.roster_table(club))


@app.command()
@guarded
def clubs(json_out: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Every club with its sync figures."""
    with core.store_from(settings_for(config, store)) as st:
        rows = core.clubs(st)
    if json_out:
        render.print_json(rows)
    else:
        render.console.print(render.clubs_table(rows))
