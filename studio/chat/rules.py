"""Chat rules that need nothing but the values: text, names, anonymous ids,
participant ids, the blocklist and the settings' ranges. No I/O.

Lengths count Unicode code points (an emoji is one, whatever its UTF-8
size), as PostgreSQL's `char_length` does in the table's check.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from studio.core import text
from studio.errors import StudioError
from studio.models import CHAT_MODES, CHAT_TEXT_MAX, User

TEXT_MAX = CHAT_TEXT_MAX
NAME_MAX = 40
BLOCKLIST_MAX = 200
BLOCKED_WORD_MAX = 50
SLOW_MODE_MAX = 3600
TIMEOUT_MINUTES_MAX = 7 * 24 * 60
ANON_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
PARTICIPANT_PATTERN = re.compile(r"[ua][A-Za-z0-9_-]{1,31}")

# Error codes a client can act on (the socket's `chat.error` codes) and the
# HTTP status the API answers them with.
STATUS = {
    "banned": 403,
    "timed_out": 403,
    "slow_mode": 429,
    "chat_off": 409,
    "signed_in_only": 403,
    "too_long": 400,
    "rate_limited": 429,
    "blocked_word": 400,
    "invalid": 400,
    "forbidden": 403,
    "not_found": 404,
}


class ChatRefused(StudioError):
    """The chat refused a message or an action; nothing was changed."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.status = STATUS[code]
        self.retry_after = None if retry_after is None else max(1, round(retry_after))


def clean_text(text: object) -> str:
    """A message's text, trimmed; raises ChatRefused (invalid, too_long)."""
    if not isinstance(text, str):
        raise ChatRefused("invalid", "A message must be text.")
    text = text.strip()
    if not text:
        raise ChatRefused("invalid", "Write something first.")
    if len(text) > TEXT_MAX:
        raise ChatRefused("too_long", f"A message is at most {TEXT_MAX} characters.")
    _refuse_unprintable(text, "A message")
    return text


def clean_name(name: object) -> str:
    """An anonymous participant's display name; raises ChatRefused (invalid)."""
    if not isinstance(name, str) or not name.strip():
        raise ChatRefused("invalid", "Choose a display name to chat.")
    name = " ".join(name.split())
    if len(name) > NAME_MAX:
        raise ChatRefused("invalid", f"A display name is at most {NAME_MAX} characters.")
    _refuse_unprintable(name, "A display name")
    return name


def clean_anon(anon: object) -> str:
    """The random id an anonymous browser keeps; raises ChatRefused (invalid)."""
    if not isinstance(anon, str) or not ANON_PATTERN.fullmatch(anon):
        raise ChatRefused("invalid", "An anonymous id is 16 to 64 letters, digits, '-' or '_'.")
    return anon


def clean_participant(participant: object) -> str:
    """A participant id as messages show it; raises ChatRefused (invalid)."""
    if not isinstance(participant, str) or not PARTICIPANT_PATTERN.fullmatch(participant):
        raise ChatRefused("invalid", "That is not a participant id.")
    return participant


def clean_mode(mode: object) -> str:
    if mode not in CHAT_MODES:
        raise ChatRefused("invalid", "The chat mode is one of: " + ", ".join(CHAT_MODES) + ".")
    return str(mode)


def clean_slow_mode(seconds: object) -> int:
    if not _is_int(seconds) or not 0 <= seconds <= SLOW_MODE_MAX:  # type: ignore[operator]
        raise ChatRefused("invalid", f"Slow mode is 0 to {SLOW_MODE_MAX} seconds.")
    return int(seconds)  # type: ignore[arg-type]


def clean_minutes(minutes: object) -> int:
    if not _is_int(minutes) or not 1 <= minutes <= TIMEOUT_MINUTES_MAX:  # type: ignore[operator]
        raise ChatRefused("invalid", f"A timeout is 1 to {TIMEOUT_MINUTES_MAX} minutes.")
    return int(minutes)  # type: ignore[arg-type]


def clean_message_id(message_id: object) -> int:
    if not _is_int(message_id) or not 0 < message_id < 2**31:  # type: ignore[operator]
        raise ChatRefused("invalid", "That is not a message id.")
    return int(message_id)  # type: ignore[arg-type]


def clean_blocklist(words: object) -> list[str]:
    """Blocked words and phrases, trimmed, without duplicates (case-insensitive)."""
    if not isinstance(words, list) or len(words) > BLOCKLIST_MAX:
        raise ChatRefused("invalid", f"The blocklist is a list of at most {BLOCKLIST_MAX} words.")
    cleaned: list[str] = []
    seen: set[str] = set()
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise ChatRefused("invalid", "Each blocked word is non-empty text.")
        word = " ".join(word.split())
        if len(word) > BLOCKED_WORD_MAX:
            raise ChatRefused(
                "invalid", f"A blocked word is at most {BLOCKED_WORD_MAX} characters."
            )
        _refuse_unprintable(word, "A blocked word")
        if _fold(word) not in seen:
            seen.add(_fold(word))
            cleaned.append(word)
    return cleaned


def blocked_word(text: str, blocklist: list[str]) -> str | None:
    """The first blocklist entry `text` contains as a whole word or phrase
    (ignoring case and compatibility forms: "ＢＡＤ" is "bad"), or None."""
    if not blocklist:
        return None
    folded = _fold(text)
    for word in blocklist:
        if re.search(r"(?<!\w)" + re.escape(_fold(word)) + r"(?!\w)", folded):
            return word
    return None


def participant_id(secret: str, public_id: str, *, user_id: int | None, anon: str | None) -> str:
    """The opaque id of a participant in one stream's chat: a keyed digest of
    the account or the anonymous id ("u..." / "a..."), so neither the raw id
    nor the account can be read from it or linked across streams."""
    if user_id is not None:
        kind, value = "u", f"user:{user_id}"
    else:
        kind, value = "a", f"anon:{anon}"
    digest = hmac.new(
        secret.encode(), f"chat|{public_id}|{value}".encode(), hashlib.sha256
    ).hexdigest()
    return kind + digest[:20]


def address_hash(secret: str, address: str) -> str:
    """A keyed digest of a client address (address bans without storing it)."""
    return hmac.new(secret.encode(), f"addr|{address}".encode(), hashlib.sha256).hexdigest()[:32]


def display_name(user: User) -> str:
    """The name a signed-in user writes under: theirs, or their e-mail's local part."""
    return user.display_name or user.email.split("@", 1)[0][:NAME_MAX]


def _refuse_unprintable(value: str, what: str) -> None:
    reason = text.unprintable(value)
    if reason == "invalid Unicode":
        raise ChatRefused("invalid", f"{what} is not valid Unicode text.")
    if reason is not None:
        raise ChatRefused("invalid", f"{what} cannot contain {reason}.")


def _fold(value: str) -> str:
    return unicodedata.normalize("NFKC", value).casefold()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
