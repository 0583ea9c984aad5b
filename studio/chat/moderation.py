"""Chat moderation: deleting messages, timeouts, bans, the chat's settings,
and the moderators an owner appoints. Every action is recorded in
`chat_moderation_actions` (who, what, when) and announced after the commit.

The owner and appointed moderators may moderate; only the owner appoints
moderators. Moderators (and the owner) cannot be timed out or banned.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from studio.chat import rules
from studio.chat.rules import ChatRefused
from studio.chat.service import is_moderator
from studio.core import events
from studio.models import (
    ChatBan,
    ChatMessage,
    ChatModerationAction,
    ChatModerator,
    Stream,
    User,
    utcnow,
)

UNSET = object()
ACTIONS_PAGE = 200


def require_moderator(session: Session, stream: Stream, actor: User | None) -> User:
    """`actor`, if they moderate the stream's chat; raises ChatRefused(forbidden)."""
    if actor is None or not is_moderator(session, stream, actor):
        raise ChatRefused("forbidden", "Only the stream's moderators can do that.")
    return actor


def require_owner(stream: Stream, actor: User | None) -> User:
    if actor is None or actor.id != stream.owner_id:
        raise ChatRefused("forbidden", "Only the stream's owner can do that.")
    return actor


def delete_message(session: Session, stream: Stream, actor: User | None, message_id: object):
    """Hide a message from everyone (its row stays for the moderation log)."""
    actor = require_moderator(session, stream, actor)
    message_id = rules.clean_message_id(message_id)
    message = session.scalar(
        select(ChatMessage).where(
            ChatMessage.id == message_id,
            ChatMessage.stream_id == stream.id,
            ChatMessage.deleted_at.is_(None),
        )
    )
    if message is None:
        raise ChatRefused("not_found", "That message is not in this chat (any more).")
    message.deleted_at = utcnow()
    _record(session, stream, actor, "delete", message.participant, message_id=message.id)
    events.raise_event(session, events.ChatMessageDeleted(stream.public_id, message.id))
    return message


def timeout(
    session: Session, stream: Stream, actor: User | None, participant: object, minutes: object
) -> ChatBan:
    """Refuse a participant's messages for `minutes`."""
    actor = require_moderator(session, stream, actor)
    minutes = rules.clean_minutes(minutes)
    until = utcnow() + timedelta(minutes=minutes)
    ban = _hold(session, stream, actor, participant, until)
    _record(session, stream, actor, "timeout", ban.participant, minutes=minutes)
    events.raise_event(
        session, events.ChatModerated(stream.public_id, "timeout", ban.participant, until)
    )
    return ban


def ban(session: Session, stream: Stream, actor: User | None, participant: object) -> ChatBan:
    """Refuse a participant's messages until unbanned: their account, or
    (anonymous) their anonymous id and the address they last wrote from."""
    actor = require_moderator(session, stream, actor)
    ban = _hold(session, stream, actor, participant, None)
    _record(session, stream, actor, "ban", ban.participant)
    events.raise_event(session, events.ChatModerated(stream.public_id, "ban", ban.participant))
    return ban


def unban(session: Session, stream: Stream, actor: User | None, participant: object) -> int:
    """Lift a participant's ban and timeout; returns how many were lifted."""
    actor = require_moderator(session, stream, actor)
    participant = rules.clean_participant(participant)
    lifted = session.execute(
        delete(ChatBan).where(ChatBan.stream_id == stream.id, ChatBan.participant == participant)
    ).rowcount
    if not lifted:
        raise ChatRefused("not_found", "That participant is neither banned nor timed out.")
    _record(session, stream, actor, "unban", participant)
    events.raise_event(session, events.ChatModerated(stream.public_id, "unban", participant))
    return lifted


def active_bans(session: Session, stream: Stream) -> list[ChatBan]:
    """Bans and running timeouts, newest first."""
    now = utcnow()
    return list(
        session.scalars(
            select(ChatBan)
            .where(
                ChatBan.stream_id == stream.id,
                ChatBan.expires_at.is_(None) | (ChatBan.expires_at > now),
            )
            .order_by(ChatBan.id.desc())
        )
    )


def update_settings(
    session: Session,
    stream: Stream,
    actor: User | None,
    *,
    mode: object = UNSET,
    slow_mode: object = UNSET,
    blocklist: object = UNSET,
) -> Stream:
    """Change any of the chat mode, slow mode and blocklist (all checked
    before any is changed)."""
    actor = require_moderator(session, stream, actor)
    changes: dict = {}
    if mode is not UNSET:
        changes["mode"] = rules.clean_mode(mode)
    if slow_mode is not UNSET:
        changes["slow_mode"] = rules.clean_slow_mode(slow_mode)
    if blocklist is not UNSET:
        changes["blocklist"] = rules.clean_blocklist(blocklist)
    if not changes:
        raise ChatRefused("invalid", "Name a setting to change: mode, slow_mode or blocklist.")
    stream.chat_mode = changes.get("mode", stream.chat_mode)
    stream.chat_slow_mode = changes.get("slow_mode", stream.chat_slow_mode)
    stream.chat_blocklist = changes.get("blocklist", stream.chat_blocklist)
    _record(session, stream, actor, "settings", None, **changes)
    events.raise_event(
        session,
        events.ChatSettingsChanged(
            stream.public_id,
            stream.chat_mode,
            stream.chat_slow_mode,
            tuple(stream.chat_blocklist or ()),
        ),
    )
    return stream


def appoint_moderator(
    session: Session, stream: Stream, actor: User | None, email: object
) -> ChatModerator:
    """Appoint the account with this e-mail (owner only; an existing account)."""
    actor = require_owner(stream, actor)
    if not isinstance(email, str) or not email.strip() or len(email) > 254:
        raise ChatRefused("invalid", "Give the e-mail address of a Live Studio account.")
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise ChatRefused("not_found", "No account has that e-mail address.")
    if user.id == stream.owner_id:
        raise ChatRefused("invalid", "The owner moderates their stream already.")
    moderator = session.scalar(
        select(ChatModerator).where(
            ChatModerator.stream_id == stream.id, ChatModerator.user_id == user.id
        )
    )
    if moderator is None:
        moderator = ChatModerator(stream_id=stream.id, user=user)
        session.add(moderator)
        session.flush()
        _record(session, stream, actor, "appoint", None, moderator=user.email)
    return moderator


def remove_moderator(session: Session, stream: Stream, actor: User | None, moderator_id: int):
    actor = require_owner(stream, actor)
    moderator = session.scalar(
        select(ChatModerator).where(
            ChatModerator.id == moderator_id, ChatModerator.stream_id == stream.id
        )
    )
    if moderator is None:
        raise ChatRefused("not_found", "That moderator is not one of this stream's.")
    _record(session, stream, actor, "remove_moderator", None, moderator=moderator.user.email)
    session.delete(moderator)


def moderators(session: Session, stream: Stream) -> list[ChatModerator]:
    return list(
        session.scalars(
            select(ChatModerator)
            .where(ChatModerator.stream_id == stream.id)
            .order_by(ChatModerator.id)
        )
    )


def actions(session: Session, stream: Stream, limit: int = ACTIONS_PAGE) -> list:
    """The moderation log, newest first."""
    return list(
        session.scalars(
            select(ChatModerationAction)
            .where(ChatModerationAction.stream_id == stream.id)
            .order_by(ChatModerationAction.id.desc())
            .limit(limit)
        )
    )


def _hold(session, stream: Stream, actor: User, participant: object, until) -> ChatBan:
    """Ban (until None) or time out a participant who wrote in this chat."""
    participant = rules.clean_participant(participant)
    last = session.scalar(
        select(ChatMessage)
        .where(ChatMessage.stream_id == stream.id, ChatMessage.participant == participant)
        .order_by(ChatMessage.id.desc())
        .limit(1)
    )
    if last is None:
        raise ChatRefused("not_found", "No one with that participant id wrote in this chat.")
    if last.user_id is not None and is_moderator(session, stream, session.get(User, last.user_id)):
        raise ChatRefused("forbidden", "Moderators cannot be timed out or banned.")
    # One row per participant: a ban replaces a timeout and the other way round.
    session.execute(
        delete(ChatBan).where(ChatBan.stream_id == stream.id, ChatBan.participant == participant)
    )
    ban = ChatBan(
        stream_id=stream.id,
        participant=participant,
        user_id=last.user_id,
        address_hash=None if last.user_id is not None else last.address_hash,
        expires_at=until,
        created_by_id=actor.id,
    )
    session.add(ban)
    session.flush()
    return ban


def _record(
    session: Session,
    stream: Stream,
    actor: User,
    action: str,
    participant: str | None,
    message_id: int | None = None,
    **detail,
) -> None:
    session.add(
        ChatModerationAction(
            stream_id=stream.id,
            moderator_id=actor.id,
            action=action,
            participant=participant,
            message_id=message_id,
            detail=detail,
        )
    )
