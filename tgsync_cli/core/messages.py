"""Route 4: a message in a group proves its writer is a member.

This is the hot path. A message from a member the cache knows as active costs two dict lookups
and a note in the seen-buffer: no store, no network. Anyone else (an unknown writer, someone
recorded as gone) is one store observation, after which the cache knows them.
"""

from __future__ import annotations

from tgsync_cli.core.cache import MemberCache
from tgsync_cli.core.clubs import BotSelf, ClubDirectory
from tgsync_cli.core.events import MessageSeen
from tgsync_cli.core.evidence import ACTIVE, MESSAGES, Observation
from tgsync_cli.core.rules import is_person
from tgsync_cli.core.seen import SeenBuffer
from tgsync_cli.core.store import Store


class MessageHandler:
    def __init__(self, clubs: ClubDirectory, seen: SeenBuffer, store: Store, cache: MemberCache,
                 me: BotSelf) -> None:
        self.clubs = clubs
        self.seen = seen
        self.store = store
        self.cache = cache
        self.me = me

    def __call__(self, ev: MessageSeen) -> None:
        s = ev.sender
        if (s is None or ev.sender_chat_id is not None or ev.is_automatic_forward
                or ev.chat.type in ("private", "channel") or not is_person(s, self.me.id)):
            return
        info = self.clubs.known(ev.chat.id) or self.clubs.club(ev.chat.id)
        if info is None:
            return
        if ev.chat.username is not None and ev.chat.username != info.username:
            self.clubs.note_username(info, ev.chat.username)  # in memory unless it changed
        key = (info.club_id, s.id)
        if self.cache.is_active(info.club_id, s.id):  # hot path: no store, no network
            self.seen.note(key, ev.at)
            return
        # last_seen travels with the observation: a message that does not make them active (they
        # left after it) is still when they were last seen, whatever order the two arrive in,
        # and a rerun after a crash finds it again
        out = self.store.observe(info.club_id, Observation(
            s, ACTIVE, None, ev.at, MESSAGES, strictly_newer=True, last_seen=ev.at))
        if out.status == ACTIVE:
            self.cache.add(info.club_id, s.id)
            # this message made them active (later ones count from it), or is evidence of it
            # (the store only lets it lower status_at for someone active by messages alone)
            self.seen.note_active_since(key, ev.at, made_active=out.status_applied)
            self.seen.note(key, ev.at)
        elif out.created:
            self.seen.note(key, ev.at)
