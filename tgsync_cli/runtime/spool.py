"""The spool file: events (and last_seen notes) that must outlive this process, one JSON per line.

Why it is written this way: the spool is the only copy of what it holds. So
- it is owner-only (0600): it holds people's names and ids;
- every append is fsynced, and so is the directory when the file is created or replaced, so a
  power loss after `append` returns keeps the line;
- a rewrite goes through a temporary file and `os.replace`, never truncating in place: a crash
  leaves either the old or the new spool, whole;
- every change (append, rewrite, `forget`'s scrub) holds an exclusive flock on `<spool>.lock`,
  so `forget` scrubbing the spool of a running `serve` cannot lose a line `serve` appends;
- reading never raises on content: a line that cannot be read (invalid UTF-8, not JSON, nested
  too deep, a number too long, not an event) is moved to `<spool>.bad` with its line number, and
  only then is the spool rewritten without it. Nothing is ever dropped, and a damaged line is
  reported once, not at every start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from tgsync_cli.core.seen import SeenBuffer, SeenTimes
from tgsync_cli.sources.botapi import parse_json_line
from tgsync_cli.stores.private import make_private_dirs

log = logging.getLogger("tgsync.spool")

SEEN_TYPE = "LastSeen"
MAX_LINE_ERROR = 120


class SeenNote(NamedTuple):
    """A buffered last_seen (club, member, time): spooled like an event, merged on replay. With
    the earliest message (`first`, for joined_at) and the earliest since a message made them
    active (`since`, for status_at), when the engine holds those too."""

    club_id: str
    telegram_id: int
    at: datetime
    first: Optional[datetime] = None
    since: Optional[datetime] = None


def seen_docs(seen: Dict[Tuple[str, int], datetime], first: Optional[Dict] = None,
              since: Optional[Dict] = None) -> List[dict]:
    docs = []
    for key, at in seen.items():
        doc = {"type": SEEN_TYPE, "club_id": key[0], "telegram_id": key[1], "at": at.isoformat()}
        for name, values in (("first", first), ("since", since)):
            if values and values.get(key) is not None:
                doc[name] = values[key].isoformat()
        docs.append(doc)
    return docs


def seen_times(seen: SeenBuffer) -> Dict[Tuple[str, int], SeenTimes]:
    """What a checkpoint holds per member: (newest, earliest, earliest since active)."""
    return seen.times()


def seen_buffer_docs(seen: SeenBuffer, keys: Optional[Iterable[Tuple[str, int]]] = None) -> List[dict]:
    """The buffered times (of `keys` only, when given) as spool lines."""
    times = seen.times(keys)
    return seen_docs({k: t.last for k, t in times.items()}, {k: t.first for k, t in times.items()},
                     {k: t.since for k, t in times.items()})


def merge_note(seen: SeenBuffer, note: "SeenNote") -> None:
    """A spooled note back into the seen-buffer: newest stays newest, earliest earliest."""
    seen.merge((note.club_id, note.telegram_id), note.at, note.first, note.since)


def decode_doc(doc: Any, event_from_dict: Callable[[Any], Any]) -> Any:
    """A spooled dict → an event, or a SeenNote. Raises on anything else."""
    if isinstance(doc, dict) and doc.get("type") == SEEN_TYPE:
        tid = doc["telegram_id"]
        if not isinstance(doc["club_id"], str) or isinstance(tid, bool) or not isinstance(tid, int):
            raise ValueError("LastSeen needs a club_id string and an integer telegram_id")
        opt = {k: datetime.fromisoformat(doc[k]) for k in ("first", "since") if isinstance(doc.get(k), str)}
        return SeenNote(doc["club_id"], tid, datetime.fromisoformat(doc["at"]), **opt)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    return event_from_dict(doc)


def lines_of(raw: bytes) -> List[bytes]:
    """Lines split on b"\n" only, each keeping it (bytes.splitlines also splits on a bare \r,
    which a damaged line may hold: line numbers would then disagree with `wc -l` and editors)."""
    parts = raw.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:  # a last line without its newline (a write cut short)
        lines.append(parts[-1])
    return lines


def loads_line(raw: bytes) -> Any:
    """One spool line → JSON value, bounded (InputError for anything unreadable)."""
    return parse_json_line(raw)


_LOCKS: Dict[str, list] = {}  # lock path -> [thread lock, fd, depth]: re-entrant in a process
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _flocked(spool_path: Path):
    """Exclusive across processes (flock) and threads; re-entrant for the holding thread."""
    key = str(spool_path.with_name(spool_path.name + ".lock"))
    with _LOCKS_GUARD:
        entry = _LOCKS.setdefault(key, [threading.RLock(), None, 0])
    with entry[0]:
        if entry[2] == 0:
            make_private_dirs(str(spool_path.parent))
            if entry[1] is None:
                entry[1] = os.open(key, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(entry[1], fcntl.LOCK_EX)
        entry[2] += 1
        try:
            yield
        finally:
            entry[2] -= 1
            if entry[2] == 0:
                fcntl.flock(entry[1], fcntl.LOCK_UN)


class Spool:
    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)
        self.bad_path = self.path.with_name(self.path.name + ".bad")

    def exists(self) -> bool:
        return self.path.exists()

    # -- writing ------------------------------------------------------------------------------
    def append(self, docs: Iterable[dict]) -> int:
        with _flocked(self.path):
            return self._append(docs)

    def _append(self, docs: Iterable[dict]) -> int:
        data = "".join(json.dumps(d) + "\n" for d in docs).encode("utf-8")
        if not data:
            return 0
        created = not self.path.exists()
        make_private_dirs(str(self.path.parent))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            os.fchmod(fd, 0o600)
            if not created and _ends_torn(self.path):
                data = b"\n" + data  # a write cut short: its fragment stays a line of its own
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:  # a full disk: no half line is left for the next append to follow
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                    if created and size == 0:
                        self.path.unlink()
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        return data.count(b"\n")

    def rewrite(self, docs: Iterable[dict]) -> int:
        """Replace the spool with exactly `docs` (atomically); no docs removes the file."""
        return self.rewrite_raw([(json.dumps(d) + "\n").encode("utf-8") for d in docs])

    def rewrite_raw(self, lines: List[bytes]) -> int:
        with _flocked(self.path):
            return self._rewrite_raw(lines)

    def _rewrite_raw(self, lines: List[bytes]) -> int:
        if not lines:
            if self.path.exists():
                self.path.unlink()
                _fsync_dir(self.path.parent)
            return 0
        make_private_dirs(str(self.path.parent))
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                _write_all(fd, b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError:  # a full disk: the old spool stays whole, and no .tmp is left behind
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.path.parent)
        return len(lines)

    # -- reading ------------------------------------------------------------------------------
    def load(self, event_from_dict: Callable[[Any], Any]) -> Tuple[List[Any], int]:
        """(items in order, how many lines went to .bad). Never raises on the file's content."""
        with _flocked(self.path):
            return self._load(event_from_dict)

    def _load(self, event_from_dict: Callable[[Any], Any]) -> Tuple[List[Any], int]:
        if not self.path.exists():
            return [], 0
        raw = self.path.read_bytes()
        items, good, bad = [], [], []
        for n, line in enumerate(lines_of(raw), 1):
            if not line.strip():
                continue
            try:
                items.append(decode_doc(loads_line(line[:-1] if line.endswith(b"\n") else line),
                                        event_from_dict))
                good.append(line)
            except Exception as exc:  # whatever is wrong with the line, it is kept, not fatal
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:MAX_LINE_ERROR]
                log.error("%s:%d: not a spooled event, kept in %s (%s)", self.path, n,
                          self.bad_path.name, reason)
                bad.append((n, line))
        if bad:
            self.keep_bad(bad)
            self.rewrite_raw(good)  # only after .bad holds them: nothing is ever lost
        return items, len(bad)

    def keep_bad(self, bad: List[Tuple[int, bytes]]) -> None:
        """Append lines to `.bad`, each prefixed with its line number and a tab."""
        created = not self.bad_path.exists()
        make_private_dirs(str(self.bad_path.parent))
        fd = os.open(self.bad_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, b"".join(b"%d\t" % n + (line if line.endswith(b"\n") else line + b"\n")
                                    for n, line in bad))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.bad_path.parent)


def _ends_torn(path: Path) -> bool:
    """The file's last line has no newline (a write cut short by a crash)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the file itself was synced
        pass
    finally:
        os.close(fd)


def names_person(doc: Any, telegram_id: int) -> bool:
    """Whether a spooled event (as a dict) carries this person anywhere (`forget`)."""
    if isinstance(doc, dict):
        if doc.get("type") == SEEN_TYPE and doc.get("telegram_id") == telegram_id:
            return True
        if doc.get("id") == telegram_id and "is_bot" in doc:  # a Person
            return True
        if doc.get("invited_by") == telegram_id:  # whose invite link was used
            return True
        return any(names_person(v, telegram_id) for v in doc.values())
    if isinstance(doc, list):
        return any(names_person(v, telegram_id) for v in doc)
    return False


def line_mentions(line: bytes, telegram_id: int) -> bool:
    """For lines that are not readable JSON (`.bad`): the id as a whole number anywhere."""
    return re.search(rb"(?<![0-9])%d(?![0-9])" % telegram_id, line) is not None


def scrub(path: os.PathLike | str, telegram_id: int) -> int:
    """Erase one person from every line of the spool and of its `.bad`: a line about them goes,
    a line they only took part in keeps its subject with their fields emptied. A line that
    cannot be read is dropped when the id appears in it as a number; never raises on content."""
    sp = Spool(path)
    with _flocked(sp.path):
        return _scrub(sp, telegram_id)


def line_names(line: bytes, telegram_id: int, readable: bool) -> bool:
    """Whether a spool line (or a `.bad` line, not `readable` as an event) names the person: by
    the event's people where it parses, by its raw text otherwise (a damaged line may still
    hold the id, and forget must find it)."""
    hit = None
    if readable:
        try:
            hit = names_person(loads_line(line.rstrip(b"\n")), telegram_id)
        except Exception:
            hit = None
    return bool(hit if hit is not None else line_mentions(line, telegram_id))


def _is(person: Any, telegram_id: int) -> bool:
    return isinstance(person, dict) and person.get("id") == telegram_id


def erase_person(doc: Any, telegram_id: int) -> Optional[Any]:
    """A spooled event with one person erased (`forget`): None when the event is about them
    (its subject, their last_seen), else the event with the fields naming them emptied. An
    event about someone else that they only took part in (the admin who kicked, the inviter)
    keeps its subject: dropping it would undo a kick, keeping it whole would name them again."""
    if not isinstance(doc, dict):
        return None if names_person(doc, telegram_id) else doc
    kind = doc.get("type")
    if kind == SEEN_TYPE:
        return None if doc.get("telegram_id") == telegram_id else doc
    out = dict(doc)
    for subject in ("user", "sender"):
        if _is(out.get(subject), telegram_id):
            return None
    if _is(out.get("actor"), telegram_id):
        out["actor"] = None
    if out.get("invited_by") == telegram_id:
        out["invited_by"] = None
        out["invite_link"] = None  # their link: its name often names them
    if isinstance(out.get("entries"), list):
        out["entries"] = [e for e in out["entries"]
                          if not (isinstance(e, dict) and _is(e.get("person"), telegram_id))]
    return None if names_person(out, telegram_id) else out


def scrub_line(line: bytes, telegram_id: int, readable: bool) -> Optional[bytes]:
    """The line with the person erased, the same line if it never named them, None to drop it.
    A line that cannot be read is dropped when the id appears in it as a number."""
    if readable:
        try:
            doc = loads_line(line.rstrip(b"\n"))
        except Exception:
            doc = _UNREADABLE
        if doc is not _UNREADABLE:
            if not names_person(doc, telegram_id):
                return line
            kept = erase_person(doc, telegram_id)
            return None if kept is None else (json.dumps(kept) + "\n").encode("utf-8")
    return None if line_mentions(line, telegram_id) else line


_UNREADABLE = object()


def _scrub(sp: Spool, telegram_id: int) -> int:
    """Returns how many lines named the person (dropped, or kept with them erased)."""
    changed = 0
    for target, readable in ((sp.path, True), (sp.bad_path, False)):
        if not target.exists():
            continue
        kept, touched = [], False
        for line in lines_of(target.read_bytes()):
            if not line.strip():
                continue
            new = scrub_line(line, telegram_id, readable)
            if new is not line:
                changed += 1
                touched = True
            if new is not None:
                kept.append(new)
        if touched:
            Spool(target)._rewrite_raw(kept)  # .bad is only written under the spool lock
    return changed
