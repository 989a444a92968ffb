"""Console entry point: the Typer app with every command area registered."""

from __future__ import annotations

import importlib

from tgsync_cli.cli.base import app

# Command areas register themselves on `app` when imported; optional ones may be absent.
for _area in ("offline", "live", "ops", "scale", "store", "insights"):
    try:
        importlib.import_module(f"tgsync_cli.cli.{_area}")
    except ModuleNotFoundError as exc:  # an area not built yet is simply not offered
        if exc.name != f"tgsync_cli.cli.{_area}":
            raise


def _accept_negative_chat_ids() -> None:
    """Group ids are negative (-100…): let commands taking CHAT read `-1001234` as a value."""
    import inspect

    for info in app.registered_commands:
        params = inspect.signature(info.callback).parameters
        if "chat" in params or "telegram_id" in params:
            info.context_settings = {**(info.context_settings or {}), "ignore_unknown_options": True}


_accept_negative_chat_ids()


def main() -> None:
    app(prog_name="tgsync")
