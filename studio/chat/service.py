"""The chat domain: who may write in a stream's chat, what is stored, what
readers see. Moderation (delete, bans, timeouts, settings, moderators) is in
`studio.chat.moderation`.

Like the stream service, functions take a session and plain values, never
commit (the caller does) and raise `ChatRefused` or domain errors; what
changed is announced as events after the commit (the fan-out pushes them to
every socket). Limits (rate, slow mode) come in as a `ChatLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import exists, select
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from studio.chat import rules
from studio.chat.rules import ChatRefused
from studio.core import events
from studio.errors import NotFound
from studio.models import (
    Broadcast,
    ChatBan,
    ChatMessage,
    ChatModerator,
    Stream,
    User,
    utcnow,
)

HISTORY = 50  # messages a socket receives on connect
PAGE_MAX = 200


class Limits(Protocol):
    """What the service needs of `studio.chat.limits.ChatLimits`."""

    def check_message(self, stream: str, participant: str, address: str) -> None: ...

    def claim_slow_mode(self, stream: str, participant: str, seconds: int) -> None: ...


@dataclass(frozen=True)
class Author:
    """Who is writing: a signed-in user, or an anonymous viewer (their
    browser's id and chosen name), and the address they write from."""

    address: str
    user: User | None = None
    anon: object = None
    name: object = None


def post_message(
    session: Session, public_id: str, author: Author, text: object, *, secret: str, limits: Limits
) -> ChatMessage:
    """Store a message in the chat of stream `public_id` and announce it.

    Checked in this order: the text (no I/O), the rate limits (Redis, before
    any query, so a flood costs the database nothing), the stream being
    live (or waiting for its publisher), the chat mode, bans and timeouts,
    the blocklist, slow mode. Moderators are exempt from slow mode. Raises
    ChatRefused."""
    text = rules.clean_text(text)
    if author.user is not None:
        participant = rules.participant_id(secret, public_id, user_id=author.user.id, anon=None)
        name = rules.display_name(author.user)
    else:
        anon = rules.clean_anon(author.anon)
        name = rules.clean_name(author.name)
        participant = rules.participant_id(secret, public_id, user_id=None, anon=anon)
    address = rules.address_hash(secret, author.address)
    limits.check_message(public_id, participant, address)

    # The stream and its open broadcast in one query (a message costs few round trips).
    row = session.execute(
        select(Stream, Broadcast)
        .outerjoin(
            Broadcast,
            (Broadcast.stream_id == Stream.id)
            & Broadcast.ended_at.is_(None)
            # The reconnect window is the same broadcast: its viewers wait together.
            & Stream.status.in_(("live", "reconnecting")),
        )
        .where(Stream.public_id == public_id)
    ).first()
    if row is None:
        raise NotFound("Stream not found.")
    stream, broadcast = row
    if stream.chat_mode == "off":
        raise ChatRefused("chat_off", "Chat is off for this stream.")
    if broadcast is None:
        raise ChatRefused("chat_off", "Chat opens when the stream is live.")
    if stream.chat_mode == "signed_in" and author.user is None:
        raise ChatRefused("signed_in_only", "Sign in to chat: this stream's chat is for members.")
    _refuse_banned(session, stream, participant, author.user, address)
    if word := rules.blocked_word(text, list(stream.chat_blocklist or [])):
        raise ChatRefused(
            "blocked_word", f"Your message contains a word this chat does not allow: {word}."
        )
    if stream.chat_slow_mode and not is_moderator(session, stream, author.user):
        limits.claim_slow_mode(stream.public_id, participant, stream.chat_slow_mode)

    now = utcnow()
    message = ChatMessage(
        stream_id=stream.id,
        broadcast_id=broadcast.id,
        participant=participant,
        user_id=author.user.id if author.user is not None else None,
        address_hash=address,
        name=name,
        text=text,
        sent_at=now,
        offset=round(max((now - broadcast.started_at).total_seconds(), 0.0), 3),
    )
    # A chat message is not worth waiting for the disk: the commit returns
    # before the WAL is flushed (a crash may lose the last fraction of a
    # second of chat, never consistency). Only this transaction is affected.
    session.execute(sql("SET LOCAL synchronous_commit TO OFF"))
    session.add(message)
    session.flush()
    events.raise_event(session, events.ChatMessagePosted(stream.public_id, message_view(message)))
    return message


def history(
    session: Session,
    stream: Stream,
    *,
    limit: int = HISTORY,
    before: int | None = None,
    after: int | None = None,
    broadcast: int | None = None,
) -> tuple[list[ChatMessage], bool]:
    """Visible messages, oldest first, and whether more lie beyond the page:
    the last `limit` (before `before`, if given), or the first `limit` after
    `after` (reading forward, as a replay does)."""
    query = select(ChatMessage).where(
        ChatMessage.stream_id == stream.id, ChatMessage.deleted_at.is_(None)
    )
    if broadcast is not None:
        query = query.where(ChatMessage.broadcast_id == broadcast)
    if before is not None:
        query = query.where(ChatMessage.id < before)
    if after is not None:
        query = query.where(ChatMessage.id > after).order_by(ChatMessage.id)
    else:
        query = query.order_by(ChatMessage.id.desc())
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return rows, more


def message_view(message: ChatMessage) -> dict:
    """A message as readers get it (socket and API): no account, no address."""
    return {
        "id": message.id,
        "participant": message.participant,
        "name": message.name,
        "signed_in": message.signed_in,
        "text": message.text,
        "sent_at": message.sent_at.isoformat(),
        "broadcast": message.broadcast_id,
        "offset": message.offset,
    }


def settings_view(stream: Stream, moderator: bool) -> dict:
    """The chat's settings; the blocklist only for moderators."""
    view: dict = {"mode": stream.chat_mode, "slow_mode": stream.chat_slow_mode}
    if moderator:
        view["blocklist"] = list(stream.chat_blocklist or [])
    return view


def is_moderator(session: Session, stream: Stream, user: User | None) -> bool:
    """The stream's owner, or a user the owner appointed."""
    if user is None:
        return False
    if user.id == stream.owner_id:
        return True
    return bool(
        session.scalar(
            select(
                exists().where(
                    ChatModerator.stream_id == stream.id, ChatModerator.user_id == user.id
                )
            )
        )
    )


def moderated_stream(session: Session, user: User, public_id: str) -> Stream:
    """A stream `user` owns or moderates; NotFound otherwise (as for anyone
    else's stream, so ids are never told apart)."""
    stream = session.scalar(select(Stream).where(Stream.public_id == public_id))
    if stream is None or not is_moderator(session, stream, user):
        raise NotFound("Stream not found.")
    return stream


def _refuse_banned(
    session: Session, stream: Stream, participant: str, user: User | None, address: str
) -> None:
    """Raise ChatRefused if a ban or a running timeout holds this author:
    their participant id, their account, or (anonymous) their address."""
    holds = ChatBan.participant == participant
    if user is not None:
        holds = holds | (ChatBan.user_id == user.id)
    else:
        holds = holds | ((ChatBan.address_hash == address) & ChatBan.user_id.is_(None))
    now = utcnow()
    bans = session.scalars(
        select(ChatBan).where(
            ChatBan.stream_id == stream.id,
            holds,
            ChatBan.expires_at.is_(None) | (ChatBan.expires_at > now),
        )
    ).all()
    if any(ban.expires_at is None for ban in bans):
        raise ChatRefused("banned", "You are banned from this chat.")
    if bans:
        until = max(ban.expires_at for ban in bans if ban.expires_at is not None)
        raise ChatRefused(
            "timed_out",
            "A moderator has timed you out; you can write again later.",
            (until - now).total_seconds(),
        )
