"""Whole-store export and import for the SQLite backend (`tgsync store copy`).

Export renders the documents every read shows; import writes them idempotently: clubs by `_id` (or their
`telegram_group_id`), memberships by (club, telegram_id), accounts by telegram_id, departures by
(club, telegram_id), log entries by their whole content — so copying twice changes nothing.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Iterator, List, Tuple, cast

from tgsync_cli.stores.sqlite_insights import LOG_COLS
from tgsync_cli.stores.sqlite_schema import MEMBER_COLS, USER_COLS, dt_in, dt_out, member_in, member_out, sync_in



def export_all(store) -> Dict[str, List[dict]]:
    with store._tx("export", write=False) as cur:
        clubs = store._all_clubs(cur)
        log = _log_rows(cur)
        users = [store._user_doc(r) for r in cur.execute(
            f"SELECT {', '.join(USER_COLS)} FROM users ORDER BY telegram_id")]
        deps = [{"club_id": c, "telegram_id": t, "status": s, "at": dt_out(a)} for c, t, s, a in cur.execute(
            "SELECT club_id, telegram_id, status, at FROM departures ORDER BY club_id, telegram_id")]
        activity = [{"club_id": c, "week": w, "telegram_id": t} for c, w, t in cur.execute(
            "SELECT club_id, week, telegram_id FROM activity ORDER BY club_id, week, telegram_id")]
        recs = [{"club_id": c, "at": dt_out(a), "total_members_telegram": t, "active": n, "drift": d}
                for c, a, t, n, d in cur.execute(
                    "SELECT club_id, at, telegram, active, drift FROM reconciles ORDER BY seq")]
    return {"clubs": clubs, "users": users, "membership_log": log, "departures": deps,
            "activity": activity, "reconciles": recs}


def log_key(e: dict) -> str:
    return json.dumps([e.get("club_id"), e.get("telegram_id"), str(e.get("at")), e.get("from"), e.get("to"),
                       e.get("source"), e.get("actor"), e.get("invite_link")], sort_keys=True, default=str)


def import_all(store, docs: Dict[str, List[dict]]) -> Dict[str, int]:
    n = {"clubs": 0, "members": 0, "users": 0, "membership_log": 0, "departures": 0, "activity": 0,
         "reconciles": 0}
    with store._tx("import", write=True) as cur:
        for u in docs.get("users", []):
            cur.execute("INSERT INTO users (id, telegram_id, username, first_name, last_name, language_code,"
                        " created_at, updated_at, dm_blocked) VALUES (?,?,?,?,?,?,?,?,?)"
                        " ON CONFLICT(telegram_id) DO UPDATE SET username = excluded.username,"
                        " first_name = excluded.first_name, last_name = excluded.last_name,"
                        " language_code = excluded.language_code, updated_at = excluded.updated_at,"
                        " dm_blocked = excluded.dm_blocked",
                        (u["_id"], u["telegram_id"], u.get("username"), u.get("first_name"),
                         u.get("last_name"), u.get("language_code"), dt_in(u.get("created_at")),
                         dt_in(u.get("updated_at")),
                         None if u.get("dm_blocked") is None else int(bool(u["dm_blocked"]))))
            n["users"] += 1
        # a copy keeps the accounts' times as they are (the memberships' triggers would date them back)
        tids = {u["telegram_id"] for u in docs.get("users", [])} | {
            m.get("telegram_id") for c in docs.get("clubs", []) for m in c.get("members") or ()}
        kept = cur.execute("SELECT created_at, updated_at, telegram_id FROM users WHERE telegram_id IN"
                           " (SELECT value FROM json_each(?))",
                           (json.dumps(sorted(t for t in tids if isinstance(t, int))),)).fetchall()
        for c in docs.get("clubs", []):
            row = cur.execute("SELECT id FROM clubs WHERE id = ? OR telegram_group_id = ?",
                              (c["_id"], c["telegram_group_id"])).fetchone()
            cid = row[0] if row else c["_id"]
            prev = list(c.get("previous_group_ids") or [])
            if row is None:
                cur.execute("INSERT INTO clubs (id, telegram_group_id) VALUES (?, ?)", (cid, c["telegram_group_id"]))
            cur.execute("UPDATE clubs SET telegram_group_id = ?, name = ?, username = ?, created_by = ?,"
                        " sync = ?, previous_group_ids = ?, version = version + 1 WHERE id = ?",
                        (c["telegram_group_id"], c.get("name"), c.get("username"), c.get("created_by"),
                         sync_in(dict(c.get("sync") or {})), json.dumps(prev), cid))
            for old in prev:
                cur.execute("INSERT OR REPLACE INTO club_aliases (old_group_id, club_id) VALUES (?, ?)", (old, cid))
            n["clubs"] += 1
            for m in c.get("members") or []:
                if "hard_at" not in m:  # a seed document: its status_at is the last event's
                    m = {**m, "hard_at": m.get("status_at")}
                if _merged(cur, cid, m):
                    n["members"] += 1
                    continue
                vals = [member_in(k, m.get(k)) for k in MEMBER_COLS]
                sets = ", ".join(f"{k} = excluded.{k}" for k in MEMBER_COLS if k != "telegram_id")
                cur.execute(f"INSERT INTO memberships (club_id, {', '.join(MEMBER_COLS)}) VALUES "
                            f"(?, {', '.join('?' * len(MEMBER_COLS))}) ON CONFLICT(club_id, telegram_id)"
                            f" DO UPDATE SET {sets}", [cid, *vals])
                n["members"] += 1
        cur.executemany("UPDATE users SET created_at = ?, updated_at = ? WHERE telegram_id = ?", kept)
        for e in docs.get("membership_log", []):
            if _log_present(cur, e):
                continue  # copied before (inserted rows are seen by the next look-up too)
            fr = e.get("from") or {}
            cur.execute(f"INSERT INTO membership_log ({LOG_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (e["club_id"], e["telegram_id"], dt_in(e.get("at")), fr.get("status"), fr.get("role"),
                         (e.get("to") or {}).get("status"), (e.get("to") or {}).get("role"), e.get("source"),
                         e.get("actor"), e.get("invite_link"), e.get("invited_by")))
            n["membership_log"] += 1
        for d in docs.get("departures", []):
            cur.execute("INSERT INTO departures (club_id, telegram_id, status, at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT(club_id, telegram_id) DO UPDATE SET status = excluded.status, at = excluded.at",
                        (d["club_id"], d["telegram_id"], d.get("status"), dt_in(d.get("at"))))
            n["departures"] += 1
        for a in docs.get("activity", []):
            cur.execute("INSERT OR IGNORE INTO activity (club_id, week, telegram_id) VALUES (?, ?, ?)",
                        (a["club_id"], a["week"], a["telegram_id"]))
            n["activity"] += 1
        have_recs = {(c, a) for c, a in cur.execute("SELECT club_id, at FROM reconciles")}
        for r in docs.get("reconciles", []):
            if (r["club_id"], dt_in(r.get("at"))) in have_recs:
                continue  # copied before: a copy run twice changes nothing
            cur.execute("INSERT INTO reconciles (club_id, at, telegram, active, drift) VALUES (?, ?, ?, ?, ?)",
                        (r["club_id"], dt_in(r.get("at")), r.get("total_members_telegram"), r.get("active"),
                         r.get("drift")))
            n["reconciles"] += 1
    return n


def _merged(cur, cid: str, m: dict) -> bool:
    """A membership the target holds already takes the newest evidence of each kind from the
    copy (stores/copy_merge.py), as a MongoDB target does; False when there is none yet."""
    from tgsync_cli.stores.copy_merge import merge_member

    row = cur.execute(f"SELECT {', '.join(MEMBER_COLS)} FROM memberships WHERE club_id = ? AND telegram_id = ?",
                      (cid, m["telegram_id"])).fetchone()
    if row is None:
        return False
    change = merge_member({k: member_out(k, v) for k, v in zip(MEMBER_COLS, row, strict=False)}, m)
    change = {k: v for k, v in change.items() if k in MEMBER_COLS}
    if change:
        cur.execute(f"UPDATE memberships SET {', '.join(f'{k} = ?' for k in change)}"
                    " WHERE club_id = ? AND telegram_id = ?",
                    [member_in(k, v) for k, v in change.items()] + [cid, m["telegram_id"]])
    return True


def _log_rows(cur) -> List[Dict[str, Any]]:
    from tgsync_cli.stores.sqlite_insights import SqliteInsights

    rows = SqliteInsights._log(cur, f"SELECT {LOG_COLS} FROM membership_log ORDER BY seq", ())
    return cast(List[Dict[str, Any]], rows)


def export_chunks(store, chunk: int) -> Iterator[Tuple[str, List[dict]]]:
    """The same documents as `export_all`, a page at a time (keyset paging, one short read
    transaction per page): copying a store of any size holds one page in memory, never the whole
    store, and never keeps a read snapshot open for the length of the copy."""
    club_page = max(1, chunk // 50)  # a club carries its members
    yield from _pages(store, chunk, "users", f"SELECT {', '.join(USER_COLS)} FROM users"
                      " WHERE telegram_id > ? ORDER BY telegram_id LIMIT ?",
                      lambda r: (r[1],), (-(2**63),), store._user_doc)
    last: tuple = (-(2**63),)
    while True:
        with store._tx("export", write=False) as cur:
            rows = cur.execute(f"{store._CLUB} WHERE telegram_group_id > ? ORDER BY telegram_group_id"
                               " LIMIT ?", (*last, club_page)).fetchall()
            docs = [store._club_doc(cur, r) for r in rows]
        if not rows:
            break
        last = (rows[-1][1],)
        yield "clubs", docs
    while_log = f"SELECT seq, {LOG_COLS} FROM membership_log WHERE seq > ? ORDER BY seq LIMIT ?"
    last = (0,)
    while True:
        with store._tx("export", write=False) as cur:
            rows = cur.execute(while_log, (*last, chunk)).fetchall()
        if not rows:
            break
        last = (rows[-1][0],)
        yield "membership_log", [_log_doc(r[1:]) for r in rows]
    yield from _pages(store, chunk, "departures", "SELECT club_id, telegram_id, status, at FROM departures"
                      " WHERE (club_id, telegram_id) > (?, ?) ORDER BY club_id, telegram_id LIMIT ?",
                      lambda r: (r[0], r[1]), ("", -(2**63)),
                      lambda r: {"club_id": r[0], "telegram_id": r[1], "status": r[2], "at": dt_out(r[3])})
    yield from _pages(store, chunk, "activity", "SELECT club_id, week, telegram_id FROM activity"
                      " WHERE (club_id, week, telegram_id) > (?, ?, ?) ORDER BY club_id, week, telegram_id"
                      " LIMIT ?", lambda r: tuple(r), ("", "", -(2**63)),
                      lambda r: {"club_id": r[0], "week": r[1], "telegram_id": r[2]})
    yield from _pages(store, chunk, "reconciles", "SELECT club_id, at, telegram, active, drift, seq FROM"
                      " reconciles WHERE seq > ? ORDER BY seq LIMIT ?", lambda r: (r[5],), (0,),
                      lambda r: {"club_id": r[0], "at": dt_out(r[1]), "total_members_telegram": r[2],
                                 "active": r[3], "drift": r[4]})


def _pages(store, chunk: int, name: str, sql: str, key: Callable[[Any], tuple], start: tuple,
           doc: Callable[[Any], dict]) -> Iterator[Tuple[str, List[dict]]]:
    last = start
    while True:
        with store._tx("export", write=False) as cur:
            rows = cur.execute(sql, (*last, chunk)).fetchall()
        if not rows:
            return
        last = key(rows[-1])
        yield name, [doc(r) for r in rows]


def _log_doc(r) -> dict:
    c, t, a, fs, fr, ts, tr, s, ac, il, ib = r
    return {"club_id": c, "telegram_id": t, "at": dt_out(a),
            "from": None if fs is None and fr is None else {"status": fs, "role": fr},
            "to": {"status": ts, "role": tr}, "source": s, "actor": ac, "invite_link": il,
            "invited_by": ib}


_SAME_LOG = ("SELECT 1 FROM membership_log WHERE club_id = ? AND at IS ? AND telegram_id = ?"
             " AND from_status IS ? AND from_role IS ? AND to_status IS ? AND to_role IS ?"
             " AND source IS ? AND actor IS ? AND invite_link IS ? LIMIT 1")


def _log_present(cur, e: dict) -> bool:
    """Whether the target holds this entry already (what `log_key` compares), by the (club, at)
    index: one short look-up per entry, so a copy is linear in the size of the log."""
    fr, to = e.get("from") or {}, e.get("to") or {}
    return cur.execute(_SAME_LOG, (e["club_id"], dt_in(e.get("at")), e["telegram_id"], fr.get("status"),
                                   fr.get("role"), to.get("status"), to.get("role"), e.get("source"),
                                   e.get("actor"), e.get("invite_link"))).fetchone() is not None
