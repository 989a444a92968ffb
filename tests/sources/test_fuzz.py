"""Hostile input at every door: hypothesis throws malformed data at each parser.

The promise for each: never a traceback; a refusal names where the fault is (JSON path, line
number, config key); and a refused input writes nothing. (The Desktop export parser has its own
fuzz test beside it.)
"""

import json
import string
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tgsync_cli import app as core
from tgsync_cli.sources.botapi import parse_update
from tgsync_cli.core.cache import MemoryMemberCache
from tgsync_cli.cli import app
from tgsync_cli.runtime.config import SCHEMA, load_settings
from tgsync_cli.core.engine import Engine
from tgsync_cli.core.errors import ConfigError, InputError
from tgsync_cli.core.events import DeepLinkStart, Person
from tgsync_cli.sim.faults import snapshot
from tgsync_cli.core.rules import parse_join_payload
from tgsync_cli.sources.scenario import validate
from tgsync_cli.stores import open_store

from tests import botapi_updates as U
from tests.worlds import Story

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
runner = CliRunner()

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
                | st.floats(allow_nan=False) | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)


def paths(doc, prefix=()):
    """Every path into a JSON document (for mutating one place)."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, prefix + (i,))


@st.composite
def damaged(draw, base):
    """(`base` with one to three places replaced by arbitrary JSON or deleted, those places)."""
    doc, places = json.loads(json.dumps(base)), []  # no shared sub-objects, as in real JSON
    for _ in range(draw(st.integers(1, 3))):
        all_paths = [p for p in paths(doc) if p]
        if not all_paths:
            break
        path = draw(st.sampled_from(all_paths))
        places.append(path)
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc, places


def mutated(base):
    return damaged(base).map(lambda pair: pair[0])


def named_path(message: str, root: str) -> tuple:
    """`update.message.new_chat_members[0].id: missing` → ("message", "new_chat_members", 0, "id")."""
    where = message.split(": ", 1)[0]
    assert where == root or where.startswith(root + "."), message
    out = []
    for part in where[len(root) + 1:].split(".") if where != root else []:
        name, *indexes = part.replace("]", "").split("[")
        out.append(name)
        out.extend(int(i) for i in indexes)
    return tuple(out)


def names_a_damaged_place(named: tuple, places) -> bool:
    """The error points into something damaged, or at the object a damaged field was taken from."""
    return any(named[:len(p)] == p or (p[:len(named)] == named and len(p) == len(named) + 1)
               for p in places)


def base_scenario():
    return (Story({1: "creator", 2: "member", 3: "administrator"}, chat_type="group").bot_added()
            .then("join", user=4).then("message", user=2, text="hi").then("leave", user=3)
            .then("start", user=4, payload="join_-1001500").then("migrate", to=-1009999)
            .then("kick", chat=-1009999, user=2, by=1).then("reconcile", chat=-1009999).scenario)


# -- scenario files ------------------------------------------------------------------------------
@FUZZ
@given(mutated(base_scenario()))
def test_a_damaged_scenario_is_refused_with_a_json_path_or_runs_cleanly(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("scn") / "scenario.json"
    path.write_text(json.dumps(doc))
    store = open_store("memory:")
    try:
        validate(doc)
    except InputError as exc:
        assert str(exc).startswith("$"), str(exc)
        assert "\n" not in str(exc)
        try:
            core.simulate(path, store)
        except InputError as again:
            assert str(again).startswith(f"{path}: $")
        else:
            raise AssertionError("simulate ran a scenario validate refuses")
        assert store.ops == 0 and snapshot(store) == {"clubs": [], "users": [], "departures": []}
        return
    core.simulate(path, store)  # accepted: it must run to the end without a traceback


def test_a_refused_scenario_exits_1_with_one_line_and_leaves_the_store_alone(tmp_path):
    store_uri = f"file:{tmp_path}/store"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(Story().bot_added().scenario))
    assert runner.invoke(app, ["simulate", str(good), "--store", store_uri]).exit_code == 0
    before = snapshot(open_store(store_uri))
    doc = base_scenario()
    doc["timeline"][3]["user"] = "two"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    r = runner.invoke(app, ["simulate", str(bad), "--store", store_uri])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [f"error: {bad}: $.timeline[3].user: expected an integer, got \"two\""]
    assert snapshot(open_store(store_uri)) == before


# -- Bot API updates ---------------------------------------------------------------------------
VALID_UPDATES = [U.bot_added(1_700_000_000), U.member(1_700_000_100, 5, "left", "member"),
                 U.message(1_700_000_200, 5), U.start(1_700_000_300, 5, "join_-1001700"),
                 U.message(1_700_000_400, 6, new_chat_members=[U.user(6)]),
                 U.message(1_700_000_500, 1, left_chat_member=U.user(6), text=None)]


@FUZZ
@given(st.sampled_from(VALID_UPDATES).flatmap(damaged))
def test_an_update_with_missing_or_wrong_typed_fields_is_an_input_error_naming_the_field(case):
    update, places = case
    try:
        events = parse_update(update)
    except InputError as exc:
        assert "\n" not in str(exc)
        assert names_a_damaged_place(named_path(str(exc), "update"), places), (str(exc), places)
        return
    store = open_store("memory:")
    engine = Engine(store, _Members(), MemoryMemberCache(), bot_id=9000)
    for ev in events:  # whatever parses must not crash the engine
        engine.handle(ev)


@FUZZ
@given(json_values)
def test_any_json_value_as_an_update_parses_or_is_refused(value):
    try:
        parse_update(value)
    except InputError:
        pass


garbage_lines = st.one_of(
    st.text(alphabet=string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "")
            .replace("\x0c", ""), min_size=1, max_size=30).filter(lambda s: s.strip() and not _is_json(s)),
    st.sampled_from(["[]", "42", "\"update\"", "null", "{}", '{"update_id": 1}',
                     '{"message": {"date": 1}}', '{"chat_member": []}']))


def _is_json(s):
    try:
        json.loads(s)
        return True
    except ValueError:
        return False


@FUZZ
@given(st.lists(st.tuples(st.booleans(), st.integers(0, len(VALID_UPDATES) - 1), garbage_lines),
                min_size=1, max_size=8))
def test_a_replay_file_with_bad_lines_applies_every_valid_line_and_reports_every_invalid_one(
        tmp_path_factory, picks):
    d = tmp_path_factory.mktemp("replay")
    lines, bad, good = [], [], []
    for n, (valid, i, junk) in enumerate(picks, 1):
        if valid:
            lines.append(json.dumps(VALID_UPDATES[i]))
            good.append(lines[-1])
        else:
            lines.append(junk)
            bad.append(n)
    (d / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    (d / "good.jsonl").write_text("\n".join(good) + "\n")
    mixed_store, good_store = open_store("memory:"), open_store("memory:")
    report = core.replay(d / "mixed.jsonl", mixed_store)
    core.replay(d / "good.jsonl", good_store)
    assert [n for n, _ in report.invalid] == bad
    assert report.applied == len(good)
    assert snapshot(mixed_store) == snapshot(good_store)


def test_replay_with_a_bad_line_exits_1_naming_the_line_after_applying_the_rest(tmp_path):
    f = tmp_path / "updates.jsonl"
    f.write_text(json.dumps(VALID_UPDATES[0]) + "\n{oops\n" + json.dumps(VALID_UPDATES[1]) + "\n")
    r = runner.invoke(app, ["replay", str(f), "--store", f"file:{tmp_path}/store", "--json"])
    assert r.exit_code == 1
    assert f"{f}:2: not valid JSON" in r.output
    roster = json.loads(runner.invoke(app, ["roster", "-1001700", "--json", "--store",
                                            f"file:{tmp_path}/store"]).stdout)
    assert [m["telegram_id"] for m in roster["members"]] == [5]  # offline: no admin import


# -- config -------------------------------------------------------------------------------------
def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, int) or v == v else "nan"
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_str(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_str(s):
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


toml_values = st.recursive(st.booleans() | st.integers(-2**63, 2**63 - 1)
                           | st.floats(allow_infinity=False)
                           | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                           lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), kids, max_size=2),
                           max_leaves=4)
keys = st.sampled_from(sorted(SCHEMA)) | st.tuples(st.sampled_from(["store", "telegram", "bot"]),
                                                   st.from_regex(r"[a-z_]{1,10}", fullmatch=True))


@FUZZ
@given(keys, toml_values)
def test_any_toml_value_is_accepted_or_refused_naming_its_key(tmp_path_factory, key, value):
    section, name = key
    f = tmp_path_factory.mktemp("cfg") / "tgsync.toml"
    f.write_text(f"[{section}]\n{name} = {toml_value(value)}\n")
    f.chmod(0o600)
    try:
        load_settings(str(f), env={})
    except ConfigError as exc:
        assert f"{section}.{name}" in str(exc), str(exc)
        assert "\n" not in str(exc)


@FUZZ
@given(st.sampled_from(sorted(SCHEMA)), st.text(max_size=20))
def test_any_environment_value_is_accepted_or_refused_naming_the_variable(key, value):
    var = f"TGSYNC_{key[0].upper()}_{key[1].upper()}"
    try:
        load_settings(None, env={var: value})
    except ConfigError as exc:
        assert var in str(exc), str(exc)
        if key in (("telegram", "api_hash"), ("telegram", "bot_token")) and len(value) > 3:
            assert value not in str(exc)


def test_a_bad_config_value_exits_1_naming_the_key(tmp_path):
    f = tmp_path / "tgsync.toml"
    f.write_text("[cache]\nttl_seconds = \"soon\"\n")
    r = runner.invoke(app, ["--config", str(f), "clubs", "--store", "memory:"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [f"error: {f}: cache.ttl_seconds: expected a positive number (got 'soon')"]


# -- deep-link payloads ---------------------------------------------------------------------------
class _Members:
    """Telegram as the deep link sees it: everyone asking is an active member."""

    def me(self):
        from tgsync_cli.core.gateway import BotIdentity
        return BotIdentity(9000, "ayda_bot")

    def get_admins(self, chat_id):
        return []

    def chat_info(self, chat_id):
        from tgsync_cli.core.gateway import ChatInfo
        return ChatInfo(chat_id, "supergroup")

    def get_member(self, chat_id, user_id):
        from tgsync_cli.core.events import MemberState
        from tgsync_cli.core.gateway import ChatMemberInfo
        return ChatMemberInfo(Person(user_id), MemberState("member"))

    def member_count(self, chat_id):
        return 1

    def iter_member_pages(self, chat_id):
        return iter([[]])

    def send_group_message(self, *a, **k):
        pass

    def send_private(self, user_id, text):
        self.last = text
        return True


payloads = st.one_of(st.text(max_size=40),
                     st.from_regex(r"join_-?[0-9]{1,22}", fullmatch=True),
                     st.from_regex(r"join_-?\d{1,5}\n?", fullmatch=True),
                     st.builds(lambda s: "join_-1001500" + s, st.text(min_size=1, max_size=3)))


@FUZZ
@given(payloads)
def test_only_a_join_payload_of_ascii_digits_is_believed_and_nothing_else_is_stored(payload):
    import re
    store = open_store("memory:")
    club, _ = store.create_club(-1001500, "Sunday Long Run", None, {"bot_present": True})
    before = snapshot(store)
    tg = _Members()
    engine = Engine(store, tg, MemoryMemberCache(), bot_id=9000)
    engine.start()
    engine.handle(DeepLinkStart(Person(5, first_name="Yerlan"), payload, datetime(2025, 3, 1)))
    believed = re.fullmatch(r"join_-?[0-9]{1,20}", payload, re.ASCII) is not None
    assert (parse_join_payload(payload) is not None) == (believed and abs(int(payload[5:])) < 2**63)
    if payload == "join_-1001500":
        assert [m["telegram_id"] for m in store.club_by_id(club["_id"])["members"]] == [5]
    else:
        assert snapshot(store) == before
        assert "registered" in tg.last or "not a valid" in tg.last


# -- hostile files: bounded time, one line per fault, the rest applied -------------------------
HOSTILE_LINES = {
    "nested 200,000 deep": b"[" * 200_000 + b"]" * 200_000,
    "a 5,000-digit number": b'{"update_id": ' + b"9" * 5000 + b"}",
    "binary": bytes(b for b in range(256) if b != 10) * 4,
}


def test_replay_of_hostile_lines_reports_each_as_invalid_json_and_applies_the_rest(tmp_path):
    f = tmp_path / "updates.jsonl"
    good = [json.dumps(u).encode() for u in VALID_UPDATES[:3]]
    f.write_bytes(b"\n".join([good[0], *HOSTILE_LINES.values(), good[1], good[2]]) + b"\n")
    store = f"file:{tmp_path}/store"
    r = runner.invoke(app, ["replay", str(f), "--store", store])
    assert r.exit_code == 1
    errors = [e for e in r.stderr.splitlines() if e.startswith((str(f), "error:"))]
    assert [e.split(": ", 1)[0] for e in errors[:3]] == [f"{f}:2", f"{f}:3", f"{f}:4"]
    assert all("not valid JSON" in e and len(e) < 200 + len(str(f)) for e in errors[:3])
    assert errors[3] == "error: 3 invalid lines not applied (the 3 valid ones were)"
    roster = json.loads(runner.invoke(app, ["roster", "-1001700", "--json", "--store", store]).stdout)
    assert [m["telegram_id"] for m in roster["members"]] == [5]


def test_replay_of_a_binary_file_is_a_report_per_line_not_a_crash(tmp_path):
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\n\x89PNG\r\n\x00\x00\n")
    r = runner.invoke(app, ["replay", str(f), "--store", f"file:{tmp_path}/store"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert [e for e in r.stderr.splitlines() if e.startswith((str(f), "error:"))] == [
        f"{f}:1: not valid JSON (not UTF-8 text: byte 1)", f"{f}:2: not valid JSON (not UTF-8 text: byte 1)",
        f"{f}:3: not valid JSON (Expecting value, column 1)",
        "error: 3 invalid lines not applied (the 0 valid ones were)"]


def test_an_id_too_large_for_any_store_is_refused_naming_the_field():
    update = U.message(1_700_000_200, 5)
    update["message"]["from"]["id"] = 2 ** 64
    try:
        parse_update(update)
    except InputError as exc:
        assert str(exc) == "update.message.from.id: number out of range"
    else:
        raise AssertionError("accepted an id no store can hold")


def test_a_hostile_scenario_is_refused_in_one_line(tmp_path):
    for what, raw in HOSTILE_LINES.items():
        f = tmp_path / "scenario.json"
        f.write_bytes(raw)
        r = runner.invoke(app, ["simulate", str(f), "--store", "memory:"])
        assert r.exit_code == 1, what
        line, = r.output.strip().splitlines()
        assert line.startswith(f"error: {f}") and "not valid JSON" in line and len(line) < 200, what
