"""Copy a whole store to another (`tgsync store copy`): the path from the embedded default to
MongoDB when a deployment outgrows one machine, or back for a local look.

Works through the protocol only (`export` on the source, `import_documents` on the target), in
chunks so a progress bar can follow; every chunk is idempotent, so a copy run twice — or rerun
after it was interrupted — ends with the same target."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from tgsync_cli.stores.copy_forget import ForgetGuard

CHUNK = 1000


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
    forgotten: int = 0  # people erased by `forget` while the copy ran: not carried over

    def as_json(self) -> Dict[str, object]:
        return asdict(self)


def copy_store(source, target, progress: Optional[Callable[[int, int], None]] = None) -> CopyReport:
    """`progress(done, total)` after each chunk, counted in documents.

    Linear in the size of the store: a source that pages (`export_chunks`) is read a chunk at a
    time, so memory holds one chunk; each imported entry is looked up by index in the target,
    never by re-reading what the target holds. `forget` run on either store during the copy wins
    (stores/copy_forget.py)."""
    rep = CopyReport(source.uri_label, target.uri_label)
    guard = ForgetGuard(source, target)
    counts = source.counts() if hasattr(source, "export_chunks") else None
    if counts is not None:
        total = sum(counts.get(k, 0) for k in ("users", "clubs", "membership_log", "departures",
                                                "activity", "reconciles"))
        parts: Iterable[Tuple[str, List[dict]]] = source.export_chunks(CHUNK)
    else:
        docs = source.export()
        whole: List[Tuple[str, List[dict]]] = []
        for name in ("users", "clubs", "membership_log", "departures", "activity", "reconciles"):
            items = docs.get(name, [])
            whole += [(name, items[i:i + CHUNK]) for i in range(0, len(items), CHUNK)]
        total = sum(len(items) for _, items in whole)
        parts = whole
    done = 0
    if progress is not None:
        progress(0, total)
    for name, items in parts:
        guard.poll()
        kept = guard.filter(name, items)
        target.import_documents({name: kept})
        done += len(items)
        if name == "clubs":
            rep.members += sum(len(c.get("members") or []) for c in kept)
        setattr(rep, name, getattr(rep, name) + len(kept))
        if progress is not None:
            progress(done, total)
    guard.poll()  # a forget between the last poll and the last chunk's import
    rep.forgotten = len(guard.forgotten)
    return rep
