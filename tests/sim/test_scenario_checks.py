"""Scenario files as a person writes them: a time without a zone is refused (Telegram's times
are UTC), and a message from someone who is not in the group is dropped with a note, as the
simulator does for the other steps Telegram would not deliver."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.worlds import Story
from tgsync_cli.cli import app

runner = CliRunner()


def test_a_time_without_a_zone_is_refused_before_anything_runs(tmp_path):
    story = Story().bot_added()
    story.scenario["timeline"][0]["at"] = "2025-03-01T07:01:00"
    res = runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", f"file:{tmp_path}/s"])
    assert res.exit_code == 1
    assert "$.timeline[0].at" in res.stderr and "no time zone" in res.stderr and "UTC" in res.stderr
    assert "2025-03-01T07:01:00Z" in res.stderr  # the spelling to use
    assert not (tmp_path / "s").exists()


def test_an_offset_is_a_zone():
    from tgsync_cli.sources.scenario import _has_zone

    assert _has_zone("2025-03-01T12:01:00+05:00") and _has_zone("2025-03-01T07:01:00Z")
    assert not _has_zone("2025-03-01") and not _has_zone("2025-03-01T07:01:00")


def test_a_message_from_someone_not_in_the_group_is_dropped_with_a_note(tmp_path):
    story = Story({1: "creator", 2: "member"}).bot_added().then("message", user=6, text="hi")
    res = runner.invoke(app, ["simulate", str(story.write(tmp_path)), "--store", "memory:"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.stdout.split())
    assert "user 6 is not in chat -1001500 (left), so Telegram would not deliver it (dropped)" in said
