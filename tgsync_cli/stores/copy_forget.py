"""`forget` wins over `store copy`: a person erased in the source (or in the target) while a copy
runs is not carried over, and what was copied of them before the erasure is erased again.

`forget` leaves a short-lived note in the store it ran on (a salted hash of the id, never the id,
core/store.py `forgotten_key`). The copy reads the notes of both stores before every chunk:
the chunk's people are matched against them and erased from it (an event they only took part
in keeps its subject, with them emptied), and every person copied so far who matches a new note
is erased from the target. A last poll after the last chunk closes the window."""

from __future__ import annotations

from typing import Any, Dict, List, Set, Tuple

from tgsync_cli.core.store import forgotten_key


class ForgetGuard:
    def __init__(self, source: Any, target: Any):
        self._stores = [s for s in (source, target) if hasattr(s, "forgotten_since")]
        self._target = target
        self._notes: List[Tuple[str, str]] = []
        self._seen: Set[Tuple[str, str]] = set()
        self.forgotten: Set[int] = set()   # people erased during the copy (ids of this run only)
        self._copied: Set[int] = set()     # every person id the copy wrote so far
        self._accounts: Dict[int, Any] = {}  # telegram id → account _id (for created_by)
        self.erased_again = 0

    def poll(self) -> None:
        fresh = []
        for store in self._stores:
            for salt, key, _at in store.forgotten_since(None):
                if (salt, key) not in self._seen:
                    self._seen.add((salt, key))
                    fresh.append((salt, key))
        if not fresh:
            return
        self._notes += fresh
        for tid in self._copied:
            if tid not in self.forgotten and any(forgotten_key(s, tid) == k for s, k in fresh):
                self.forgotten.add(tid)
                self._target.forget(tid)  # copied before the erasure: erased again in the target
                self.erased_again += 1

    def _is_forgotten(self, tid: Any) -> bool:
        if not isinstance(tid, int) or not self._notes:
            return False
        if tid in self.forgotten:
            return True
        if any(forgotten_key(s, tid) == k for s, k in self._notes):
            self.forgotten.add(tid)
            return True
        return False

    def filter(self, name: str, docs: List[dict]) -> List[dict]:
        """The chunk without the forgotten; remembers who it carries (for later notes)."""
        out = [d for d in (self._one(name, doc) for doc in docs) if d is not None]
        for doc in out:
            self._remember(name, doc)
        return out

    def _one(self, name: str, doc: dict) -> Any:
        if name in ("users", "departures", "activity", "membership_log") and self._is_forgotten(doc.get("telegram_id")):
            return None
        if name == "membership_log":
            doc = dict(doc)
            for k in ("actor", "invited_by"):
                if self._is_forgotten(doc.get(k)):
                    doc[k] = None
            return doc
        if name == "clubs":
            doc = dict(doc)
            gone = {tid for tid, acc in self._accounts.items() if acc == doc.get("created_by")}
            if any(self._is_forgotten(t) for t in gone):
                doc["created_by"] = None
            members = []
            for m in doc.get("members") or []:
                if self._is_forgotten(m.get("telegram_id")):
                    continue
                if self._is_forgotten(m.get("invited_by")):
                    m = {**m, "invited_by": None}
                members.append(m)
            doc["members"] = members
        return doc

    def _remember(self, name: str, doc: dict) -> None:
        for k in ("telegram_id", "actor", "invited_by"):
            if isinstance(doc.get(k), int):
                self._copied.add(doc[k])
        if name == "users" and isinstance(doc.get("telegram_id"), int):
            self._accounts[doc["telegram_id"]] = doc.get("_id")
        for m in doc.get("members") or ():
            if isinstance(m.get("telegram_id"), int):
                self._copied.add(m["telegram_id"])
