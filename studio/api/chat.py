"""The chat API (docs/api.md, "Chat"): history for anyone, moderation for
the stream's owner and moderators, moderators and the log for the owner.

Routes are added to the API blueprint of `studio.api.views` when this module
is imported (by the app factory). Rules live in `studio.chat`; a refusal
(`ChatRefused`) answers with its status in the API's error format.
"""

from __future__ import annotations

from studio.api import openapi
from studio.api.chat_schemas import (
    ChatActionList,
    ChatActionOut,
    ChatBanCreate,
    ChatBanList,
    ChatBanOut,
    ChatHistory,
    ChatHistoryQuery,
    ChatMessageOut,
    ChatMessagePath,
    ChatModeratorCreate,
    ChatModeratorList,
    ChatModeratorOut,
    ChatModeratorPath,
    ChatParticipantPath,
    ChatSettingsOut,
    ChatSettingsUpdate,
    ChatTimeoutCreate,
)
from studio.api.schemas import StreamPath
from studio.api.views import INVALID_BODY, NOT_FOUND, bp, caller, reply
from studio.chat import moderation
from studio.chat import service as chat
from studio.extensions import db
from studio.models import ChatBan, ChatModerator, Stream
from studio.streams import service as streams

MODERATED = openapi.error_response(
    "No such stream among those you own or moderate (another creator's stream is 404 too)."
)
OWNER_ONLY = openapi.error_response("You moderate this stream but do not own it.")
NO_SUCH = openapi.error_response(
    "No such stream among those you own or moderate, or no such message, participant or "
    "moderator in its chat."
)


def _moderated(stream_id: str) -> Stream:
    return chat.moderated_stream(db.session, caller(), stream_id)


def _settings(stream: Stream) -> ChatSettingsOut:
    return ChatSettingsOut(**chat.settings_view(stream, moderator=True))


def _ban_out(ban: ChatBan) -> ChatBanOut:
    return ChatBanOut(
        participant=ban.participant,
        kind="ban" if ban.expires_at is None else "timeout",
        expires_at=ban.expires_at,
        created_at=ban.created_at,
    )


def _moderator_out(moderator: ChatModerator) -> ChatModeratorOut:
    return ChatModeratorOut(
        id=moderator.id, email=moderator.user.email, appointed_at=moderator.appointed_at
    )


@bp.get(
    "/streams/<stream_id>/chat",
    responses={200: ChatHistory, 404: NOT_FOUND},
    security=[{}],
    description="Public: no token needed. Deleted messages are left out.",
)
def chat_history(path: StreamPath, query: ChatHistoryQuery):
    """Read a stream's chat."""
    stream = streams.get_public_stream(db.session, path.stream_id)
    messages, more = chat.history(
        db.session,
        stream,
        limit=query.limit,
        before=query.before,
        after=query.after,
        broadcast=query.broadcast,
    )
    out = [ChatMessageOut(**chat.message_view(m)) for m in messages]
    return reply(ChatHistory(messages=out, has_more=more))


@bp.delete(
    "/streams/<stream_id>/chat/<message_id>",
    responses={204: None, 404: NO_SUCH},
    description="The message disappears from every open page at once.",
)
def delete_chat_message(path: ChatMessagePath):
    """Delete a chat message."""
    stream = _moderated(path.stream_id)
    moderation.delete_message(db.session, stream, caller(), path.message_id)
    db.session.commit()
    return reply(None)


@bp.get("/streams/<stream_id>/chat/settings", responses={200: ChatSettingsOut, 404: MODERATED})
def get_chat_settings(path: StreamPath):
    """Get a stream's chat settings."""
    return reply(_settings(_moderated(path.stream_id)))


@bp.patch(
    "/streams/<stream_id>/chat/settings",
    responses={200: ChatSettingsOut, 400: INVALID_BODY, 404: MODERATED},
)
def update_chat_settings(path: StreamPath, body: ChatSettingsUpdate):
    """Change a stream's chat mode, slow mode or blocklist."""
    stream = _moderated(path.stream_id)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    moderation.update_settings(db.session, stream, caller(), **changes)
    db.session.commit()
    return reply(_settings(stream))


@bp.get("/streams/<stream_id>/chat/bans", responses={200: ChatBanList, 404: MODERATED})
def list_chat_bans(path: StreamPath):
    """List a chat's bans and running timeouts."""
    stream = _moderated(path.stream_id)
    bans = moderation.active_bans(db.session, stream)
    return reply(ChatBanList(bans=[_ban_out(b) for b in bans]))


@bp.post(
    "/streams/<stream_id>/chat/bans",
    responses={201: ChatBanOut, 400: INVALID_BODY, 403: OWNER_ONLY, 404: NO_SUCH},
    description="Bans the account, or an anonymous participant's id and address. "
    "Moderators cannot be banned (403).",
)
def ban_chat_participant(path: StreamPath, body: ChatBanCreate):
    """Ban a participant from a chat."""
    stream = _moderated(path.stream_id)
    ban = moderation.ban(db.session, stream, caller(), body.participant)
    db.session.commit()
    return reply(_ban_out(ban), 201)


@bp.post(
    "/streams/<stream_id>/chat/timeouts",
    responses={201: ChatBanOut, 400: INVALID_BODY, 403: OWNER_ONLY, 404: NO_SUCH},
    description="Moderators cannot be timed out (403).",
)
def timeout_chat_participant(path: StreamPath, body: ChatTimeoutCreate):
    """Time a participant out for some minutes."""
    stream = _moderated(path.stream_id)
    ban = moderation.timeout(db.session, stream, caller(), body.participant, body.minutes)
    db.session.commit()
    return reply(_ban_out(ban), 201)


@bp.delete("/streams/<stream_id>/chat/bans/<participant>", responses={204: None, 404: NO_SUCH})
def unban_chat_participant(path: ChatParticipantPath):
    """Lift a participant's ban or timeout."""
    stream = _moderated(path.stream_id)
    moderation.unban(db.session, stream, caller(), path.participant)
    db.session.commit()
    return reply(None)


@bp.get(
    "/streams/<stream_id>/chat/moderators",
    responses={200: ChatModeratorList, 403: OWNER_ONLY, 404: MODERATED},
)
def list_chat_moderators(path: StreamPath):
    """List the moderators you appointed."""
    stream = _moderated(path.stream_id)
    moderation.require_owner(stream, caller())
    found = moderation.moderators(db.session, stream)
    return reply(ChatModeratorList(moderators=[_moderator_out(m) for m in found]))


@bp.post(
    "/streams/<stream_id>/chat/moderators",
    responses={201: ChatModeratorOut, 400: INVALID_BODY, 403: OWNER_ONLY, 404: NO_SUCH},
    description="Appointing someone already appointed changes nothing (201 all the same).",
)
def appoint_chat_moderator(path: StreamPath, body: ChatModeratorCreate):
    """Appoint a moderator by the e-mail of their account."""
    stream = _moderated(path.stream_id)
    moderator = moderation.appoint_moderator(db.session, stream, caller(), body.email)
    db.session.commit()
    return reply(_moderator_out(moderator), 201)


@bp.delete(
    "/streams/<stream_id>/chat/moderators/<moderator_id>",
    responses={204: None, 403: OWNER_ONLY, 404: NO_SUCH},
)
def remove_chat_moderator(path: ChatModeratorPath):
    """Remove a moderator."""
    stream = _moderated(path.stream_id)
    moderation.remove_moderator(db.session, stream, caller(), path.moderator_id)
    db.session.commit()
    return reply(None)


@bp.get(
    "/streams/<stream_id>/chat/actions",
    responses={200: ChatActionList, 403: OWNER_ONLY, 404: MODERATED},
)
def list_chat_actions(path: StreamPath):
    """The moderation log: who did what, when."""
    stream = _moderated(path.stream_id)
    moderation.require_owner(stream, caller())
    found = moderation.actions(db.session, stream)
    return reply(
        ChatActionList(
            actions=[
                ChatActionOut(
                    id=a.id,
                    action=a.action,
                    moderator=a.moderator.email if a.moderator else None,
                    participant=a.participant,
                    message_id=a.message_id,
                    detail=a.detail or {},
                    created_at=a.created_at,
                )
                for a in found
            ]
        )
    )
