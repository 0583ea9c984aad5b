"""Request and response bodies of the chat API (studio/api/chat.py).

Ranges are documented here and enforced by `studio.chat.rules`, which the
socket shares; the models check types and which fields exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studio.api.schemas import Request, StreamPath, _update_schema
from studio.chat import rules
from studio.models import CHAT_MODES

ChatMode = Literal[CHAT_MODES]  # type: ignore[valid-type]
_PARTICIPANT = {"pattern": rules.PARTICIPANT_PATTERN.pattern}
ID_MAX = 2**31 - 1  # the database's integer ids


class ChatMessagePath(StreamPath):
    message_id: int = Field(description="The message's `id`.", ge=1, le=ID_MAX)


class ChatParticipantPath(StreamPath):
    participant: str = Field(
        description="A participant id, as messages show it.", json_schema_extra=_PARTICIPANT
    )


class ChatModeratorPath(StreamPath):
    moderator_id: int = Field(description="The moderator's `id`.", ge=1, le=ID_MAX)


class ChatHistoryQuery(BaseModel):
    """Which messages: the last `limit` (before `before`), or the first
    `limit` after `after` (reading forward, as a replay does)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200, description="Messages per page (1-200).")
    before: int | None = Field(
        None, ge=1, le=ID_MAX, description="Only messages with a smaller id."
    )
    after: int | None = Field(None, ge=0, le=ID_MAX, description="Only messages with a greater id.")
    broadcast: int | None = Field(
        None, ge=1, le=ID_MAX, description="Only this broadcast's messages."
    )


class ChatMessageOut(BaseModel):
    """A chat message (as the socket's `chat.message` carries it)."""

    id: int
    participant: str = Field(
        description="Opaque id of the author in this stream's chat (never an account or "
        "an anonymous id); moderation names participants by it."
    )
    name: str
    signed_in: bool
    text: str = Field(description="Raw text: show it as text, never as HTML.")
    sent_at: datetime
    broadcast: int | None = Field(description="The broadcast it was sent during.")
    offset: float | None = Field(description="Seconds from the broadcast's start.")


class ChatHistory(BaseModel):
    """Messages, oldest first."""

    messages: list[ChatMessageOut]
    has_more: bool = Field(description="More messages lie beyond this page.")


class ChatSettingsOut(BaseModel):
    mode: ChatMode = Field(description="Who may write: everyone, signed-in users, or nobody.")
    slow_mode: int = Field(description="Seconds between two messages of a participant; 0: off.")
    blocklist: list[str] = Field(description="Words and phrases refused (whole words).")


class ChatSettingsUpdate(Request):
    """Change any of the chat mode, slow mode and blocklist."""

    model_config = ConfigDict(
        json_schema_extra=_update_schema,
        openapi_extra={"examples": {"slow": {"value": {"slow_mode": 10}}}},  # type: ignore[typeddict-unknown-key]
    )

    mode: ChatMode = Field(default=None)  # type: ignore[assignment]
    slow_mode: int = Field(  # type: ignore[assignment]
        default=None, json_schema_extra={"minimum": 0, "maximum": rules.SLOW_MODE_MAX}
    )
    blocklist: list[str] = Field(  # type: ignore[assignment]
        default=None,
        description="Replaces the list.",
        json_schema_extra={"maxItems": rules.BLOCKLIST_MAX},
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> ChatSettingsUpdate:
        if not self.model_fields_set:
            raise ValueError("Give at least one of: mode, slow_mode, blocklist.")
        return self


class ChatBanCreate(Request):
    participant: str = Field(json_schema_extra=_PARTICIPANT)


class ChatTimeoutCreate(Request):
    participant: str = Field(json_schema_extra=_PARTICIPANT)
    minutes: int = Field(json_schema_extra={"minimum": 1, "maximum": rules.TIMEOUT_MINUTES_MAX})


class ChatBanOut(BaseModel):
    participant: str
    kind: Literal["ban", "timeout"]
    expires_at: datetime | None = Field(description="When a timeout ends; null for a ban.")
    created_at: datetime


class ChatBanList(BaseModel):
    """Bans and running timeouts, newest first."""

    bans: list[ChatBanOut]


class ChatModeratorCreate(Request):
    email: str = Field(description="The e-mail of an existing account.", max_length=254)


class ChatModeratorOut(BaseModel):
    id: int
    email: str
    appointed_at: datetime


class ChatModeratorList(BaseModel):
    moderators: list[ChatModeratorOut]


class ChatActionOut(BaseModel):
    id: int
    action: Literal["delete", "timeout", "ban", "unban", "settings", "appoint", "remove_moderator"]
    moderator: str | None = Field(description="The e-mail of who did it.")
    participant: str | None
    message_id: int | None
    detail: dict
    created_at: datetime


class ChatActionList(BaseModel):
    """The moderation log, newest first (at most 200)."""

    actions: list[ChatActionOut]
