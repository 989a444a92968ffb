"""What one command leaves in the process: a logger bound to a stream that no longer exists, or
a redaction list holding another run's values, would break whatever runs next in it."""

import io
import logging
import sys

from tgsync_cli.runtime.config import forget_secrets, load_settings, redact
from tgsync_cli.runtime.logs import configure


def test_logging_set_up_under_a_stand_in_stderr_writes_to_the_current_one_after_it_closed(capsys, monkeypatch):
    stand_in = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stand_in)  # what CliRunner does around an in-process command
    configure(level="info")
    logging.getLogger("tgsync.serve").info("while the command runs")
    monkeypatch.undo()
    stand_in.close()  # ...and it closes its stream afterwards
    logging.getLogger("tgsync.serve").warning("after the command")
    err = capsys.readouterr().err
    assert "after the command" in err and "Logging error" not in err


def test_forgotten_secrets_are_no_longer_scrubbed():
    load_settings(env={"TGSYNC_TELEGRAM_API_HASH": "0123456789abcdef0123456789abcdef",
                       "TGSYNC_STORE_URI": "memory:"})
    assert redact("hash 0123456789abcdef0123456789abcdef") == "hash ***"
    forget_secrets()
    assert redact("last_sync none post_invite") == "last_sync none post_invite"
    assert redact("hash 0123456789abcdef0123456789abcdef") == "hash 0123456789abcdef0123456789abcdef"
