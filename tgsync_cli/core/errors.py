"""One small exception hierarchy; every message is written for the operator and fits one line."""

from __future__ import annotations


class TgsyncError(Exception):
    """Anything the CLI reports as `error: <message>` with exit status 1."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class ConfigError(TgsyncError):
    """A setting is missing or malformed; the message names the key."""


class InputError(TgsyncError):
    """A file or payload we were given is not what it claims to be (names file, line, field)."""


class StoreError(TgsyncError):
    """The store refused or could not be reached."""


class StoreConflict(StoreError):
    """Another writer won a race on a unique key (two processes creating the same account or
    club at once). Nothing is half-written: doing the same step again finds the winner's row."""


class StoreUnavailable(StoreError):
    """The store is down; callers may retry later (events wait, they are not dropped)."""


class TelegramError(TgsyncError):
    """Telegram refused a call. Engines handle these; they are never fatal to the update loop."""


class TelegramUnavailable(TelegramError):
    """No Telegram connection (offline replay, missing credentials): the step is reported and skipped."""


class BotNotInChat(TelegramError):
    """The bot is not (or no longer) a member of the chat."""


class AdminRequired(TelegramError):
    """The call needs the bot to be an administrator of the chat."""


class PeerUnknown(TelegramError):
    """Telegram does not know this peer to the bot (PeerIdInvalid): the bot never met it."""


class UserNeverStarted(TelegramError):
    """A private message to a user who never opened the bot; not an error for callers."""


class ChatMigratedError(TelegramError):
    """The call named a basic group that became a supergroup (Bot API: `migrate_to_chat_id`).

    Raised by gateway calls naming the old id, so a migration the bot missed is found at the
    first contact; the engine moves the club to `new_chat_id` and repeats the call there."""

    def __init__(self, old_chat_id: int, new_chat_id: int):
        super().__init__(f"chat {old_chat_id} was upgraded to supergroup {new_chat_id}")
        self.old_chat_id = old_chat_id
        self.new_chat_id = new_chat_id


class JoinRequestMissing(TelegramError):
    """There is no pending join request from this user any more (HIDE_REQUESTER_MISSING): an
    admin answered it, the user withdrew it, or it was never made."""


class AlreadyParticipant(TelegramError):
    """The user is already in the group (USER_ALREADY_PARTICIPANT): approving them is done."""


class CannotRemove(TelegramError):
    """Telegram will not ban this member: the group's creator, or an admin the bot did not
    promote (USER_ADMIN_INVALID)."""
