"""Console entry point: the Typer app with every command area registered."""

from __future__ import annotations

import importlib

from tgsync_cli.commands.base import app

# Command areas register themselves on `app` when imported; optional ones may be absent.
for _area in ("core", "live", "ops", "scale"):
    try:
        importlib.import_module(f"tgsync_cli.commands.{_area}")
    except ModuleNotFoundError as exc:  # an area not built yet is simply not offered
        if exc.name != f"tgsync_cli.commands.{_area}":
            raise


def main() -> None:
    app(prog_name="tgsync")
