"""Directories tgsync creates hold people's names and ids (the store, the spool, the session):
they are the owner's only, every level tgsync creates, not just the last."""

from __future__ import annotations

import os


def make_private_dirs(path: str) -> None:
    """Create `path` and every missing parent owner-only (0700). os.makedirs gives the mode to
    the last directory only; the parents it creates would be 0777 minus the umask."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # the umask may have taken bits away, never add: set exactly
