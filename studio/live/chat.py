"""Chat on the stream socket: what a client may send, and which chat events
each socket gets (docs/api.md, "Chat").

A frame goes through, in order: the socket's own flood guard (a token
bucket, no I/O: a client flooding one socket costs nothing but its own
greenlet, and is closed if it keeps on), the frame's size and encoding, the
JSON, its type and fields, then the chat service (rate limits in Redis
before any query). Every refusal is a `chat.error` that changes nothing.
"""

from __future__ import annotations

import logging
import time

from flask import current_app
from sqlalchemy import select

from studio.chat import moderation, rules
from studio.chat import service as chat
from studio.chat.limits import ChatLimits
from studio.chat.rules import ChatRefused
from studio.errors import StudioError
from studio.extensions import db
from studio.input_guard import BadInput, load_json
from studio.models import Stream, User

log = logging.getLogger(__name__)

FRAME_MAX = 8 * 1024  # bytes of one frame: 500 escaped emoji and the JSON around them
# Frames up to this size are read and refused with `too_long`; a bigger one
# closes the socket (1009) before it is even buffered whole.
HARD_FRAME_MAX = 64 * 1024
BURST, REFILL = 10, 2.0  # frames at once, frames per second after that
FLOOD_CLOSE = 50  # frames refused by the guard in a row: the socket is closed
PUBLIC_CHAT_EVENTS = frozenset({"chat.message", "chat.deleted", "chat.settings"})
MODERATOR_EVENTS = frozenset({"chat.moderation"})


class Flooding(Exception):
    """The client keeps sending after being told to slow down."""


def limits(app=None) -> ChatLimits:
    """The app's chat limits, created on first use."""
    app = app or current_app
    found = app.extensions.get("studio_chat_limits")
    if found is None:
        config = app.config
        found = ChatLimits(
            config["REDIS_URL"],
            participant=config["CHAT_RATE_PARTICIPANT"],
            address=config["CHAT_RATE_ADDRESS"],
            joins=config["CHAT_JOIN_RATE_ADDRESS"],
        )
        app.extensions["studio_chat_limits"] = found
    return found


def error(exc: ChatRefused) -> dict:
    return {
        "type": "chat.error",
        "code": exc.code,
        "message": exc.message,
        "retry_after": exc.retry_after,
    }


class ChatSocket:
    """One socket's side of the chat: who it is, what it may do."""

    def __init__(self, public_id: str, user: User | None, moderator: bool, address: str):
        self.public_id = public_id
        self.user_id = user.id if user is not None else None
        self.name = rules.display_name(user) if user is not None else None
        self.moderator = moderator
        self.address = address
        self._tokens = float(BURST)
        self._filled_at = time.monotonic()
        self._refused = 0
        self._warned_at = float("-inf")

    # --- server -> client ----------------------------------------------------

    def history(self, stream: Stream, broadcast_id: int | None = None) -> dict:
        """The `chat.history` message (call with a live database session):
        the conversation of the broadcast on now (`broadcast_id`), else the
        stream's latest messages (the last broadcast's, on an ended page)."""
        messages, _more = chat.history(db.session, stream, broadcast=broadcast_id)
        return {
            "type": "chat.history",
            "messages": [chat.message_view(m) for m in messages],
            "settings": chat.settings_view(stream, self.moderator),
            "you": {
                "moderator": self.moderator,
                "signed_in": self.user_id is not None,
                "name": self.name,
            },
        }

    def view(self, event: dict) -> dict | None:
        """A chat event as this socket gets it, or None if it is not for it."""
        kind = event.get("type")
        if kind == "chat.settings":
            view = {"type": kind, "settings": dict(event.get("settings") or {})}
            if self.moderator:
                view["settings"]["blocklist"] = event.get("blocklist", [])
            return view
        if kind in PUBLIC_CHAT_EVENTS or (kind in MODERATOR_EVENTS and self.moderator):
            return event
        return None

    # --- client -> server ----------------------------------------------------

    def handle(self, data: str | bytes) -> dict | None:
        """Act on one frame from the client; returns the reply to send, if any.
        Raises Flooding once the client ignored the guard for too long."""
        if not self._take_token():
            return self._flood_reply()
        try:
            # Moderators may send a long blocklist; everyone else, a message.
            frame = _parse(data, HARD_FRAME_MAX if self.moderator else FRAME_MAX)
            return self._dispatch(frame)
        except ChatRefused as exc:
            return error(exc)

    def _dispatch(self, frame: dict) -> dict | None:
        kind = frame.get("type")
        handlers = {
            "chat.send": self._send,
            "chat.delete": self._delete,
            "chat.timeout": self._timeout,
            "chat.ban": self._ban,
            "chat.unban": self._unban,
            "chat.settings": self._settings,
        }
        handler = handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise ChatRefused("invalid", "Unknown message type: send chat.send, for one.")
        try:
            handler(frame)
            db.session.commit()
        except StudioError as exc:
            db.session.rollback()
            if isinstance(exc, ChatRefused):
                raise
            raise ChatRefused("not_found", exc.message) from None
        finally:
            db.session.remove()
        return None

    def _send(self, frame: dict) -> None:
        user = self._user()
        author = chat.Author(
            address=self.address, user=user, anon=frame.get("anon"), name=frame.get("name")
        )
        chat.post_message(
            db.session,
            self.public_id,
            author,
            frame.get("text"),
            secret=current_app.config["SECRET_KEY"],
            limits=limits(),
        )

    def _delete(self, frame: dict) -> None:
        stream, actor = self._moderation()
        moderation.delete_message(db.session, stream, actor, frame.get("id"))

    def _timeout(self, frame: dict) -> None:
        stream, actor = self._moderation()
        moderation.timeout(
            db.session, stream, actor, frame.get("participant"), frame.get("minutes")
        )

    def _ban(self, frame: dict) -> None:
        stream, actor = self._moderation()
        moderation.ban(db.session, stream, actor, frame.get("participant"))

    def _unban(self, frame: dict) -> None:
        stream, actor = self._moderation()
        moderation.unban(db.session, stream, actor, frame.get("participant"))

    def _settings(self, frame: dict) -> None:
        stream, actor = self._moderation()
        changes = {k: frame[k] for k in ("mode", "slow_mode", "blocklist") if k in frame}
        moderation.update_settings(db.session, stream, actor, **changes)

    def _user(self) -> User | None:
        return db.session.get(User, self.user_id) if self.user_id is not None else None

    def _moderation(self) -> tuple[Stream, User]:
        """The stream (locked: one moderation change at a time) and the acting
        moderator, checked again now (an owner may have removed them)."""
        if not self.moderator:
            raise ChatRefused("forbidden", "Only the stream's moderators can do that.")
        stream = db.session.scalar(
            select(Stream).where(Stream.public_id == self.public_id).with_for_update()
        )
        if stream is None:
            raise ChatRefused("not_found", "This stream no longer exists.")
        return stream, moderation.require_moderator(db.session, stream, self._user())

    # --- the flood guard -----------------------------------------------------

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(BURST, self._tokens + (now - self._filled_at) * REFILL)
        self._filled_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            self._refused = 0
            return True
        return False

    def _flood_reply(self) -> dict | None:
        self._refused += 1
        if self._refused > FLOOD_CLOSE:
            raise Flooding
        now = time.monotonic()
        if now - self._warned_at < 1.0:
            return None  # one warning a second at most
        self._warned_at = now
        return error(
            ChatRefused("rate_limited", "You are sending too fast; wait a moment.", 1 / REFILL)
        )


def _parse(data: str | bytes, limit: int) -> dict:
    """A frame as a JSON object; raises ChatRefused (invalid, too_long)."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ChatRefused("invalid", "Send JSON as UTF-8 text.") from None
    if len(data) > limit or len(data.encode("utf-8", "surrogatepass")) > limit:
        raise ChatRefused("too_long", f"A message is at most {rules.TEXT_MAX} characters.")
    try:
        frame = load_json(data)
    except BadInput as exc:
        raise ChatRefused("invalid", str(exc)) from None
    except ValueError:
        raise ChatRefused("invalid", 'Send a JSON object, such as {"type": "chat.send"}.') from None
    if not isinstance(frame, dict):
        raise ChatRefused("invalid", 'Send a JSON object, such as {"type": "chat.send"}.')
    return frame
