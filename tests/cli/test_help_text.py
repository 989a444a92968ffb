"""Help reads as README does: `CHAT`, flags without a value type, the choices an option takes,
and an extra's name (`tgsync[plot]`) shown whole rather than eaten as markup."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def help_of(*cmd: str) -> str:
    res = runner.invoke(app, [*cmd, "--help"], prog_name="tgsync")
    assert res.exit_code == 0, res.output
    return res.stdout


def test_usage_names_chat_and_telegram_id_as_readme_does():
    for cmd in ("roster", "history", "stats", "import-members"):
        assert f"Usage: tgsync {cmd} [OPTIONS] CHAT" in help_of(cmd)
    assert "Usage: tgsync reconcile [OPTIONS] [CHAT]" in help_of("reconcile")
    assert "Usage: tgsync member [OPTIONS] TELEGRAM_ID" in help_of("member")
    assert "{" not in help_of("roster").split("\n", 3)[1]


def test_flags_take_no_value_and_show_none():
    for cmd in (("roster",), ("stats",), ("doctor",), ("store", "copy"), ()):
        text = help_of(*cmd)
        assert "<bool>" not in text, cmd


def test_choices_are_shown_and_completed():
    text = help_of("roster")
    assert "[active|left|kicked]" in text and "[organizer|member]" in text
    assert "history_import" in text  # --source lists its values
    from typer.main import get_command

    group = get_command(app)
    ctx = group.make_context("tgsync", ["roster", "-1001"], resilient_parsing=True)
    sub = group.get_command(ctx, "roster")
    status = next(p for p in sub.params if p.name == "status")
    assert [c.value for c in status.shell_complete(ctx, "le")] == ["left"]


def test_the_plot_extra_is_named_whole():
    assert "tgsync[plot]" in " ".join(help_of("stats").split())
