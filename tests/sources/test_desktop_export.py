"""Stories for reading a Telegram Desktop export (SPEC §4 import-history), plus fuzzing.

Exports here are written the way Desktop writes them: 1-space indent, UTF-8, `date` in the
exporting computer's local time (UTC+6 below) next to `date_unixtime` as a string.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import ijson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgsync_cli.sources import desktop_export as history
from tgsync_cli.core.errors import InputError
from tgsync_cli.sources.desktop_export import scan_export

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
ALMATY = timezone(timedelta(hours=6))


def msg(n, who, name, at=0, **extra):
    t = T0 + at
    return {"id": n, "type": "message",
            "date": datetime.fromtimestamp(t, ALMATY).strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(t), "from": name, "from_id": who, "text": "hi",
            "text_entities": [{"type": "plain", "text": "hi"}], **extra}


def svc(n, who, name, action, at=0, **extra):
    m = msg(n, who, name, at, **extra)
    for k in ("from", "from_id", "text_entities"):
        m.pop(k)
    m.update(type="service", actor=name, actor_id=who, action=action, text="")
    return m


def export(tmp_path, messages, name="SRG Almaty", type_="private_supergroup", id_=1234567890,
           messages_first=False, file="result.json"):
    head = {"name": name, "type": type_, "id": id_}
    doc = {"messages": messages, **head} if messages_first else {**head, "messages": messages}
    p = tmp_path / file
    p.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return p


def status(scan):
    return {uid: ev.present for uid, ev in scan.candidates.items()}


def raw(tmp_path, text: str | bytes):
    p = tmp_path / "result.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


# --- who becomes a candidate -------------------------------------------------------------

def test_senders_and_actors_are_candidates_channels_and_stand_ins_are_not(tmp_path):
    scan = scan_export(export(tmp_path, [
        svc(1, "user11", "Aida", "create_group", members=["Aida"]),
        msg(2, "user12", "Ivan", 10),
        svc(3, "user13", "Dana", "join_group_by_link", 20, inviter="SRG Almaty"),
        svc(4, "user11", "Aida", "invite_members", 30, members=["Marat"]),  # Marat: a name, no id
        msg(5, "channel1234567890", "SRG Almaty", 40),  # anonymous admin / linked channel
        msg(6, "chat777", "Old group", 50),
        msg(7, "user777000", "Telegram", 60),
        msg(8, "user1087968824", "Group", 70),
        svc(9, "user12", "Ivan", "pin_message", 80, message_id=2),
    ]))
    assert status(scan) == {11: True, 12: True, 13: True}
    assert scan.messages_read == 9
    assert scan.candidates[13].display_name == "Dana"
    assert scan.candidates[12].message_index == 8


def test_time_comes_from_date_unixtime_not_the_local_date(tmp_path):
    scan = scan_export(export(tmp_path, [msg(1, "user5", "Aida", 0)]))
    assert scan.candidates[5].at == datetime(2023, 11, 14, 22, 13, 20)  # naive UTC
    assert '"date": "2023-11-15T04:13:20"' in (tmp_path / "result.json").read_text()


def test_a_deleted_account_is_still_a_candidate_without_a_name(tmp_path):
    scan = scan_export(export(tmp_path, [msg(1, "user5", None), msg(2, "user6", "Dana", 5)]))
    assert scan.candidates[5].display_name is None and scan.candidates[5].present


# --- the last evidence decides ---------------------------------------------------------

def test_leaving_after_talking_is_left_and_coming_back_is_present(tmp_path):
    scan = scan_export(export(tmp_path, [
        msg(1, "user1", "Aida", 0), svc(2, "user1", "Aida", "remove_members", 10, members=["Aida"]),
        msg(3, "user2", "Ivan", 0), svc(4, "user2", "Ivan", "remove_members", 10, members=["Ivan"]),
        svc(5, "user2", "Ivan", "join_group_by_link", 20, inviter="SRG Almaty"),
        svc(6, "user3", "Dana", "remove_members", 10, members=["Dana"]), msg(7, "user3", "Dana", 30),
    ]))
    assert status(scan) == {1: False, 2: True, 3: True}
    assert scan.candidates[1].message_index == 1 and scan.candidates[2].message_index == 4


def test_time_decides_not_file_order_and_ties_go_to_the_later_message(tmp_path):
    scan = scan_export(export(tmp_path, [
        msg(1, "user1", "Aida", 50),  # newer, although written first
        svc(2, "user1", "Aida", "remove_members", 10, members=["Aida"]),
        msg(3, "user2", "Ivan", 10),
        svc(4, "user2", "Ivan", "remove_members", 10, members=["Ivan"]),  # same second, later
    ]))
    assert status(scan) == {1: True, 2: False}
    assert scan.candidates[1].at == datetime(2023, 11, 14, 22, 14, 10)


def test_an_admin_removing_someone_else_stays_present(tmp_path):
    scan = scan_export(export(tmp_path, [
        msg(1, "user2", "Ivan", 0),
        svc(2, "user1", "Aida", "remove_members", 10, members=["Ivan"]),
        svc(3, "user1", "Aida", "remove_members", 20, members=["Aida", "Ivan"]),
    ]))
    # Ivan is named, never identified: his own last evidence (a message) still says present.
    assert status(scan) == {1: True, 2: True}


def test_display_name_survives_a_later_evidence_without_one(tmp_path):
    scan = scan_export(export(tmp_path, [msg(1, "user1", "Aida", 0), msg(2, "user1", None, 5)]))
    assert scan.candidates[1].display_name == "Aida" and scan.candidates[1].message_index == 1


# --- the chat --------------------------------------------------------------------------

@pytest.mark.parametrize("type_,expected", [
    ("private_supergroup", -1001234567890), ("public_supergroup", -1001234567890),
    ("public_channel", -1001234567890), ("private_group", -1234567890), ("personal_chat", None)])
def test_bare_id_becomes_the_bot_api_id(tmp_path, type_, expected):
    scan = scan_export(export(tmp_path, [], type_=type_))
    assert (scan.chat_name, scan.chat_type, scan.bare_id) == ("SRG Almaty", type_, 1234567890)
    assert scan.bot_api_id() == expected


def test_missing_id_gives_no_bot_api_id(tmp_path):
    p = raw(tmp_path, '{"name": "X", "type": "private_group", "messages": []}')
    assert scan_export(p).bot_api_id() is None


def test_field_order_does_not_matter(tmp_path):
    msgs = [msg(1, "user1", "Aida"), svc(2, "user2", "Ivan", "remove_members", 5, members=["Ivan"])]
    first = scan_export(export(tmp_path, msgs, file="a.json"))
    last = scan_export(export(tmp_path, msgs, messages_first=True, file="b.json"))
    assert last == first and last.bot_api_id() == -1001234567890
    shuffled = {"action": "remove_members", "members": ["Ivan"], "actor_id": "user2",
                "date_unixtime": str(T0 + 9), "actor": "Ivan", "type": "service", "id": 3}
    again = scan_export(export(tmp_path, msgs + [shuffled], messages_first=True, file="c.json"))
    assert status(again) == {1: True, 2: False}


def test_compact_json_and_unknown_fields_are_fine(tmp_path):
    doc = {"about": "x", "personal_information": {"user_id": 5}, "id": 7, "messages": [
        {"id": 1, "type": "message", "date_unixtime": str(T0), "from_id": "user9",
         "text": ["a ", {"type": "bold", "text": "b", "members": ["x"], "from_id": "user12x"}],
         "photo": "photos/1.jpg", "reply_to_message_id": 0}], "type": "public_supergroup"}
    p = raw(tmp_path, json.dumps(doc, separators=(",", ":")))
    scan = scan_export(p)
    assert status(scan) == {9: True} and scan.bot_api_id() == -1000000000007


# --- broken files ----------------------------------------------------------------------

@pytest.mark.parametrize("text,needle", [
    ('{"name": "x", "chats": {"list": []}}', "not a Telegram Desktop chat export (a whole-account export"),
    ('{"name": "x"}', 'not a Telegram Desktop chat export (no "messages" array)'),
    ('[1, 2]', "not a Telegram Desktop chat export (top level is not an object)"),
    ('"hello"', "top level is not an object"),
    ('{"messages": {"a": 1}}', '("messages" is not an array)'),
    ('{"messages": 5}', '("messages" is not an array)'),
    ('{"messages": [{"type": "message"}, 7]}', "message #1 is not an object"),
    ('{"messages": [[]]}', "message #0 is not an object"),
    ('{"id": "123", "messages": []}', 'field "id" is not a whole number: "123"'),
    ('{"id": 1.5, "messages": []}', 'field "id" is not a whole number'),
    ('{"id": 0, "messages": []}', 'field "id" is not a Telegram chat id: 0'),
    ('{"name": ["x"], "messages": []}', 'field "name" is not a string'),
    ('', "file is empty"),
    ('{"messages": [], "x": ' + "[" * 100 + "]" * 100 + "}", "nested deeper than 64 levels"),
])
def test_not_an_export(tmp_path, text, needle):
    with pytest.raises(InputError) as e:
        scan_export(raw(tmp_path, text))
    assert str(e.value).startswith(str(tmp_path / "result.json") + ": ")
    assert needle in str(e.value)


@pytest.mark.parametrize("fields,needle", [
    ({"from_id": "user12x"}, 'message #1 (id 2): field "from_id" is not user<N>, channel<N> or chat<N>: "user12x"'),
    ({"from_id": 12}, 'message #1 (id 2): field "from_id" is not user<N>'),
    ({"type": "service", "actor_id": "userX", "from_id": None}, 'field "actor_id" is not user<N>'),
    ({"type": "service", "actor_id": "user3", "action": "remove_members", "members": "Ivan"},
     'message #1 (id 2): field "members" is not a list of names'),
    ({"type": "service", "actor_id": "user3", "action": "remove_members", "members": [{"a": 1}]},
     'field "members" is not a list of names'),
])
def test_a_broken_message_is_named_by_index_and_field(tmp_path, fields, needle):
    bad = msg(2, "user3", "Ivan", 5) | fields
    with pytest.raises(InputError) as e:
        scan_export(export(tmp_path, [msg(1, "user1", "Aida"), bad]))
    assert needle in str(e.value)


@pytest.mark.parametrize("bad", ["soon", None, "9" * 12, 1.5])
def test_a_message_with_an_unreadable_time_is_skipped_counted_and_named(tmp_path, bad):
    broken = msg(2, "user3", "Ivan", 5) | {"date_unixtime": bad}
    scan = scan_export(export(tmp_path, [msg(1, "user1", "Aida"), broken, msg(3, "user4", "Dana", 9)]))
    assert sorted(scan.candidates) == [1, 4]  # Ivan's only evidence had no readable time
    assert (scan.unreadable_dates, scan.unreadable_ids) == (1, [2])


def test_missing_date_unixtime_says_why(tmp_path):
    old = msg(1, "user1", "Aida")
    del old["date_unixtime"]
    with pytest.raises(InputError, match='message #0 .id 1.: field "date_unixtime" is missing'):
        scan_export(export(tmp_path, [old]))


def test_invalid_json_names_the_byte(tmp_path):
    good = json.dumps({"name": "Клуб", "messages": [msg(1, "user1", "Aida")]}, ensure_ascii=False)
    cut = good.index('"from_id"')
    text = (good[:cut] + "oops" + good[cut:]).encode()
    where = len(good[:cut].encode())  # Cyrillic name: bytes, not characters
    with pytest.raises(InputError) as e:
        scan_export(raw(tmp_path, text))
    assert f"not valid JSON near byte {where}" in str(e.value)


def test_invalid_json_deep_in_a_big_file_names_the_byte(tmp_path):
    body = ",".join(json.dumps(msg(i, "user1", "Aida", i)) for i in range(3000))  # > one chunk
    text = '{"messages": [' + body + "]] }"
    with pytest.raises(InputError, match=f"not valid JSON near byte {len(text) - 3}$"):
        scan_export(raw(tmp_path, text))


def test_truncated_file_points_at_its_end(tmp_path):
    text = json.dumps({"messages": [msg(1, "user1", "Aida")]})[:-20]
    with pytest.raises(InputError, match=f"not valid JSON near byte {len(text)}$"):
        scan_export(raw(tmp_path, text))


@pytest.mark.parametrize("text", ['{"messages": [], "x": [' + "9" * 1_000_000 + "]}",
                                  '{"messages": [], "id": ' + "9" * 4301 + "}",
                                  '{"messages": [], "x": 1e' + "9" * 4301 + "}",
                                  '{"messages": [], "x": "\\\\", "y": -' + "1" * 21 + "}"])
def test_a_number_of_more_than_20_digits_is_refused_before_it_is_converted(tmp_path, text):
    """A million-digit number took 17 s to convert and came back as a 1 MB error line."""
    with pytest.raises(InputError, match="a number of more than 20 digits near byte [0-9]+: not a") as e:
        scan_export(raw(tmp_path, text))
    assert len(str(e.value)) < 200 + len(str(tmp_path))


def test_long_digit_runs_inside_text_are_text(tmp_path):
    """Card numbers, phone lists, escaped quotes: digits in a string are not numbers."""
    texts = ["1" * 5000, 'he said \\"' + "2" * 40 + '\\"', "\\\\" + "3" * 30]
    path = export(tmp_path, [msg(i + 1, "user7", "Vera", at=i, text=t) for i, t in enumerate(texts)])
    assert set(scan_export(path).candidates) == {7}


def test_a_long_text_split_across_read_chunks_is_still_text(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "CHUNK", 7)
    path = export(tmp_path, [msg(1, "user7", "Vera", text='x\\"' + "4" * 50)])
    assert set(scan_export(path).candidates) == {7}


def test_a_date_out_of_range_skips_its_message(tmp_path):
    path = export(tmp_path, [msg(1, "user7", "Vera", date_unixtime="9" * 12)])
    scan = scan_export(path)
    assert (scan.candidates, scan.unreadable_dates, scan.unreadable_ids) == ({}, 1, [1])


@pytest.mark.parametrize("text", [b'{"messages": ["\xff"]}', '\ufeff{"messages": []}'])
def test_hostile_bytes_are_input_errors_not_crashes(tmp_path, text):
    with pytest.raises(InputError, match="not valid JSON near byte"):
        scan_export(raw(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read the file"):
        scan_export(tmp_path / "nope.json")


# --- fuzzing: only InputError, ever ----------------------------------------------------

class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _Duplicate()
    return dict(pairs)


def _agrees_with_a_plain_parse(data: bytes, scan) -> None:
    """An accepted file read whole by `json` has as many messages as the stream counted, and
    every candidate is a user some message names as its sender or actor."""
    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError):  # duplicate keys: `json` keeps one, the stream sees both
        return
    assert scan.messages_read == len(doc["messages"])
    named = set()
    for m in doc["messages"]:
        for v in (m.get("from_id"), m.get("actor_id")):
            if isinstance(v, str) and v.startswith("user") and v[4:].isascii() and v[4:].isdigit():
                named.add(int(v[4:]))
    assert set(scan.candidates) <= named, (sorted(scan.candidates), named)


def _fuzz_once(data: bytes):
    fd, name = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            scan = scan_export(name)
        except InputError as e:
            assert str(e) and "\n" not in str(e)
            return None
        _agrees_with_a_plain_parse(data, scan)
        return scan
    finally:
        os.unlink(name)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["user5", "user12x", "channel1", "1700000000", "remove_members",
                                            "service", "message", "Aida"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["messages", "id", "type", "name", "from_id", "actor_id", "actor", "from",
                         "action", "members", "date_unixtime", "x"]) | st.text(max_size=4), kids, max_size=5),
    max_leaves=25)

SAMPLE = json.dumps({"name": "A", "type": "private_group", "id": 5, "messages": [
    msg(1, "user1", "Aida"), svc(2, "user2", "Ivan", "remove_members", 3, members=["Ivan"])]}, indent=1).encode()


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_values)
def test_fuzz_random_json_raises_only_input_error(doc):
    _fuzz_once(json.dumps(doc).encode())
    _fuzz_once(json.dumps({"messages": [doc]}).encode())


@settings(max_examples=300, deadline=None, database=None)
@given(edits=st.lists(st.tuples(st.integers(0, len(SAMPLE)), st.integers(0, 3), st.binary(max_size=3)),
                      min_size=1, max_size=4),
       python_backend=st.booleans())
def test_fuzz_mutated_export_raises_only_input_error(edits, python_backend):
    data = bytearray(SAMPLE)
    for at, cut, new in edits:
        data[at:at + cut] = new
    old = history.BACKEND
    history.BACKEND = ijson.get_backend("python") if python_backend else old
    try:
        _fuzz_once(bytes(data))
    finally:
        history.BACKEND = old


# --- a big generated file: streamed, and every count right ----------------------------

@pytest.mark.slow
def test_generated_20mb_export_is_read_completely(tmp_path):
    out = tmp_path / "big.json"
    gen = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-export"), "--mb", "20",
                          "--users", "2000", "--out", str(out), "--messages-first"],
                         check=True, capture_output=True, text=True)
    want = json.loads(gen.stdout)
    assert out.stat().st_size == want["bytes"] >= 20_000_000
    scan = scan_export(out)
    present = sum(e.present for e in scan.candidates.values())
    assert (scan.messages_read, len(scan.candidates), present) == (want["messages"], want["candidates"],
                                                                   want["present"])
    assert scan.bot_api_id() == -(10**12 + want["bare_id"])


def test_pure_python_backend_gives_the_same_answers_and_prints_nothing(tmp_path, monkeypatch, capfd):
    import gc
    monkeypatch.setattr(history, "BACKEND", ijson.get_backend("python"))
    good = export(tmp_path, [msg(1, "user1", "Aida"), svc(2, "user1", "Aida", "remove_members", 5,
                                                            members=["Aida"])], file="good.json")
    assert status(scan_export(good)) == {1: False}
    with pytest.raises(InputError, match="not valid JSON near byte 34$"):  # where it ends
        scan_export(raw(tmp_path, '{"messages": [{"id": "unterminated'))
    with pytest.raises(InputError, match="not valid JSON near byte 14$"):
        scan_export(raw(tmp_path, '{"messages": [}'))
    gc.collect()
    assert capfd.readouterr().err == ""
