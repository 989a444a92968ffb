"""A join request means the same from the Bot API and from pyrogram (MTProto): who asked, where,
when, through which link, where the bot may answer them — and the join after it is approved."""

import copy

import pytest

from tests.mtproto_render import Renderer
from tgsync_cli.core.events import JoinRequested, MemberStatusChanged
from tgsync_cli.sources.botapi import parse_update

T = 1733220000
CHAT = {"id": -1000001002600, "type": "supergroup", "title": "SRG Almaty"}
ERLAN = {"id": 4, "is_bot": False, "first_name": "Erlan", "username": "erlan_runs"}
ADMIN = {"id": 1, "is_bot": False, "first_name": "Aida"}
LINK = {"invite_link": "https://t.me/+AbCdEf…", "creator": ADMIN, "creates_join_request": True,
        "is_primary": False, "is_revoked": False, "name": "spring signup"}


def both(client, update):
    update = {"update_id": 1, **update}
    return parse_update(copy.deepcopy(update)), Renderer(client, 9000).update(copy.deepcopy(update))


@pytest.mark.parametrize("extra", [{}, {"invite_link": LINK}, {"bio": "10k in 48 min " * 30},
                                   {"bio": ""}], ids=["bare", "link", "long-bio", "empty-bio"])
def test_a_join_request_is_the_same_event_on_both_paths(client, extra):
    bot_api, mtproto = both(client, {"chat_join_request": {
        "chat": CHAT, "from": ERLAN, "user_chat_id": 4, "date": T, **extra}})
    assert bot_api == mtproto
    [ev] = bot_api
    assert isinstance(ev, JoinRequested) and ev.user.id == 4 and ev.user_chat_id == 4
    assert ev.invite_link == ("spring signup" if extra.get("invite_link") else None)
    assert ev.bio is None or len(ev.bio) <= 140


@pytest.mark.parametrize("how", ["no link", "link"])
def test_the_join_after_an_approval_says_it_came_through_a_join_request(client, how):
    upd = {"chat": CHAT, "from": ADMIN, "date": T,
           "old_chat_member": {"user": ERLAN, "status": "left"},
           "new_chat_member": {"user": ERLAN, "status": "member"}}
    if how == "link":
        upd["invite_link"] = LINK
    else:
        upd["via_join_request"] = True
    bot_api, mtproto = both(client, {"chat_member": upd})
    assert bot_api == mtproto
    [ev] = bot_api
    assert isinstance(ev, MemberStatusChanged) and ev.via_join_request


def test_an_old_update_without_user_chat_id_answers_the_requester_themself():
    [ev] = parse_update({"update_id": 1, "chat_join_request": {"chat": CHAT, "from": ERLAN, "date": T}})
    assert ev.user_chat_id == 4


def test_a_join_request_and_a_look_at_requests_survive_the_spool():
    """What serve could not apply before stopping is written to the spool and read back."""
    from datetime import datetime

    from tgsync_cli.core.codec import from_dict, to_dict
    from tgsync_cli.core.events import RequestsDue

    [ev] = parse_update({"update_id": 1, "chat_join_request": {
        "chat": CHAT, "from": ERLAN, "user_chat_id": 4, "date": T, "bio": "runs", "invite_link": LINK}})
    assert from_dict(to_dict(ev)) == ev
    due = RequestsDue(datetime(2025, 3, 1, 9))
    assert from_dict(to_dict(due)) == due
