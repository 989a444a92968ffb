"""Copy a whole store to another (`tgsync store copy`): the path from the embedded default to
MongoDB when a deployment outgrows one machine, or back for a local look.

Works through the protocol only (`export` on the source, `import_documents` on the target), in
chunks so a progress bar can follow; every chunk is idempotent, so a copy run twice — or rerun
after it was interrupted — ends with the same target."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

CHUNK = 500


@dataclass
class CopyReport:
    source: str
    target: str
    clubs: int = 0
    members: int = 0
    users: int = 0
    membership_log: int = 0
    departures: int = 0
    activity: int = 0
    reconciles: int = 0

    def as_json(self) -> Dict[str, object]:
        return asdict(self)


def copy_store(source, target, progress: Optional[Callable[[int, int], None]] = None) -> CopyReport:
    """`progress(done, total)` after each chunk, counted in documents."""
    docs = source.export()
    rep = CopyReport(source.uri_label, target.uri_label)
    parts: List[tuple] = []
    for name in ("users", "clubs", "membership_log", "departures", "activity", "reconciles"):
        items = docs.get(name, [])
        parts += [(name, items[i:i + CHUNK]) for i in range(0, len(items), CHUNK)]
    total = sum(len(items) for _, items in parts)
    done = 0
    if progress is not None:
        progress(0, total)
    for name, items in parts:
        target.import_documents({name: items})
        done += len(items)
        if name == "clubs":
            rep.members += sum(len(c.get("members") or []) for c in items)
        setattr(rep, name, getattr(rep, name) + len(items))
        if progress is not None:
            progress(done, total)
    return rep
