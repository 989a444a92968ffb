"""At 80 columns (a common terminal, and the width of piped output) every table keeps each
column it shows whole: the header, and every word of our own (roles, statuses, routes) on one
line. Columns that do not fit are left out, and the table says which.

Given the demo's club, `clubs`, `roster`, `history`, `member`, `stats` and the demo's own
tables are read at 80 columns.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tgsync_cli.cli import app

runner = CliRunner()
CHAT = "-1001234567890"
OUR_WORDS = {"organizer", "member", "active", "left", "kicked", "admin_import", "message_activity",
             "manual_registration", "service_message", "chat_member_event", "member_import",
             "history_import", "joined", "promoted", "demoted", "admin", "absent"}


ENUM_COLUMNS = {"role", "status", "source", "route", "change", "bot"}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    store = f"file:{tmp_path_factory.mktemp('narrow')}/store"
    assert runner.invoke(app, ["demo", "--store", store]).exit_code == 0
    return store


@pytest.fixture(autouse=True)
def eighty(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def tables(out: str):
    """(header cells, body cells, text after the table) of every bordered table in `out`."""
    found, lines = [], out.splitlines()
    for n, ln in enumerate(lines):
        if ln.startswith("┃"):
            headers = [c.strip() for c in ln.strip().strip("┃").split("┃")]
            body, k = [], n + 2
            while k < len(lines) and lines[k].startswith("│"):
                body.append([c.strip() for c in lines[k].strip().strip("│").split("│")])
                k += 1
            after = " ".join(" ".join(lines[k:k + 4]).split())
            found.append((headers, body, after))
    return found


def assert_readable(out: str, expected_columns) -> None:
    assert all(len(ln) <= 80 for ln in out.splitlines()), out
    for (headers, body, after), columns in zip(tables(out), expected_columns):
        assert all(h in columns for h in headers), (headers, columns)  # no header cut
        missing = [c for c in columns if c not in headers]
        if missing:
            assert "not shown at this width: " + ", ".join(missing) in after, after
        for row in body:
            for header, cell in zip(headers, row):
                if header in ENUM_COLUMNS and cell:
                    assert cell in OUR_WORDS, f"{header} {cell!r} is cut: {row}"


def test_clubs_and_roster_keep_headers_and_words(demo_store):
    clubs = runner.invoke(app, ["clubs", "--store", demo_store]).stdout
    roster = runner.invoke(app, ["roster", CHAT, "--store", demo_store]).stdout
    assert_readable(clubs, [("club", "chat", "name", "active", "bot", "telegram", "drift", "last sync")])
    assert_readable(roster, [("telegram_id", "name", "role", "status", "source", "status_at")])
    assert "organizer" in roster and "2024-12-01T08:00:00Z" in roster  # status_at whole (a listing only confirmed it)


def test_history_member_and_stats_keep_headers_and_words(demo_store):
    from tgsync_cli.cli.render_insights import (HISTORY_COLUMNS, LOG_COLUMNS, MEMBERSHIP_COLUMNS,
                                                STATS_COLUMNS)

    history = runner.invoke(app, ["history", CHAT, "--store", demo_store]).stdout
    member = runner.invoke(app, ["member", "5", "--store", demo_store]).stdout
    stats = runner.invoke(app, ["stats", CHAT, "--until", "2024-12-08", "--store", demo_store]).stdout
    assert_readable(history, [HISTORY_COLUMNS])
    assert_readable(member, [MEMBERSHIP_COLUMNS, LOG_COLUMNS])
    assert_readable(stats, [STATS_COLUMNS])
    assert "manual_registration" in member and "chat_member_event" in history


def test_the_demo_reads_at_80_columns():
    out = runner.invoke(app, ["demo"]).stdout
    assert_readable(out, [("telegram_id", "name", "role", "status", "source", "status_at"),
                          ("to", "text", "button")])


def test_what_the_bot_posted_names_each_recipient():
    out = " ".join(runner.invoke(app, ["demo"]).stdout.split())
    assert "group SRG Almaty Runners" in out and "Saule @saule (private)" in out
