"""Request and response bodies of the JSON API.

These pydantic models validate requests (through flask-openapi3) and generate
the OpenAPI document, so the two cannot disagree. Title rules stay in
`studio.streams.service` (`clean_title`); the models only check types, patterns
and which fields exist. Request examples sit in `openapi_extra`, which the
library puts on the request body's media type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studio.models import INGEST_PROTOCOLS, STREAM_STATUSES
from studio.streams.service import PUBLIC_ID_LENGTH, TITLE_MAX

Status = Literal[STREAM_STATUSES]  # type: ignore[valid-type]
Protocol = Literal[INGEST_PROTOCOLS]  # type: ignore[valid-type]
IngestProtocol = Literal["rtmp", "webrtc"]
PlaybackMode = Literal["hls", "webrtc"]

# Documented limits of a title; `clean_title` enforces them after trimming spaces.
_TITLE_SCHEMA = {"minLength": 1, "maxLength": TITLE_MAX}
# What `new_public_id` makes (PUBLIC_ID_ALPHABET: lowercase letters and digits).
PUBLIC_ID_PATTERN = f"^[a-z0-9]{{{PUBLIC_ID_LENGTH}}}$"


class StreamPath(BaseModel):
    """The path of a stream's URLs."""

    stream_id: str = Field(
        description="The stream's public id (`id` in a stream).", pattern=PUBLIC_ID_PATTERN
    )


class Request(BaseModel):
    """A request body: exact JSON types (no coercion), no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class StreamCreate(Request):
    """Create a stream."""

    model_config = ConfigDict(
        openapi_extra={"examples": {"create": {"value": {"title": "Friday night show"}}}}  # type: ignore[typeddict-unknown-key]
    )

    title: str = Field(description="Shown on the watch page.", json_schema_extra=_TITLE_SCHEMA)


def _update_schema(schema: dict) -> None:
    # The `None` defaults only mean "absent"; null itself is refused.
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
    schema["minProperties"] = 1


class StreamUpdate(Request):
    """Change a stream: any of its title and its disabled flag."""

    model_config = ConfigDict(
        json_schema_extra=_update_schema,
        openapi_extra={  # type: ignore[typeddict-unknown-key]
            "examples": {
                "disable": {"value": {"disabled": True}},
                "rename": {"value": {"title": "New title", "disabled": False}},
            }
        },
    )

    # Absent means "leave as is"; null is refused (these fields are never empty).
    title: str = Field(default=None, json_schema_extra=_TITLE_SCHEMA)  # type: ignore[assignment]
    disabled: bool = Field(  # type: ignore[assignment]
        default=None, description="A disabled stream refuses publish; a live publisher is dropped."
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> StreamUpdate:
        if not self.model_fields_set:
            raise ValueError("Give at least one of: title, disabled.")
        return self


class Ingest(BaseModel):
    """Publish settings. They contain the secret key: only the owner sees them."""

    protocols: list[IngestProtocol] = Field(
        description=(
            "How this server's media engine takes a stream: `rtmp` always, `webrtc` "
            "(WHIP and the SRS SDK) only on SRS. The browser's go-live page works on every engine."
        )
    )
    rtmp_server: str = Field(description="OBS 'Server': rtmp://{ingest host}/live")
    stream_key: str = Field(description="OBS 'Stream key': {stream id}?secret={key}")
    webrtc_url: str | None = Field(
        description=(
            "For the SRS WebRTC SDK: webrtc://{host}/live/{stream id}?schema=https&secret={key}; "
            "the SDK posts to https://{host}/rtc/v1/publish/. "
            "null when `protocols` has no `webrtc` (nginx-rtmp)."
        )
    )
    whip_url: str | None = Field(
        description=(
            "For WHIP clients: POST the SDP offer here, DELETE the Location of the answer to stop. "
            "null when `protocols` has no `webrtc` (nginx-rtmp)."
        )
    )


class Playback(BaseModel):
    """Viewer URLs (public)."""

    modes: list[PlaybackMode] = Field(
        description=(
            "How viewers can watch: `hls` (from the CDN, always) and `webrtc` "
            "(low latency over WHEP from the media server: SRS only)."
        )
    )
    hls_url: str = Field(description="Live HLS playlist on the CDN.")
    whep_url: str | None = Field(
        description=(
            "WebRTC playback (WHEP): POST an SDP offer (recvonly audio and video) here, "
            "get a 201 with the SDP answer, DELETE its Location to stop. No secret. "
            "null when `modes` has no `webrtc` (nginx-rtmp, or WebRTC playback turned off)."
        )
    )
    watch_url: str = Field(description="Public watch page.")


class StreamOut(BaseModel):
    """A stream as its owner sees it."""

    id: str = Field(
        description="Public id: the stream name in every URL. Not a secret.",
        pattern=PUBLIC_ID_PATTERN,
    )
    title: str
    status: Status
    disabled: bool
    created_at: datetime
    thumbnail_url: str | None = Field(
        description=(
            "JPEG of a recent frame on the CDN (refreshed about every 10 s while live, "
            "cached 10 s); null until the stream's first broadcast has one."
        )
    )
    viewers: int = Field(
        ge=0,
        description=(
            "People watching now: open watch pages and embeds (not the owner's own pages), "
            "counted across every server; a closed page stops counting within about 30 s."
        ),
    )
    ingest: Ingest
    playback: Playback


class StreamList(BaseModel):
    """The caller's streams, newest first."""

    streams: list[StreamOut]


class BroadcastOut(BaseModel):
    """One publish session of a stream."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    protocol: Protocol
    end_reason: str | None
    replay_url: str | None = Field(description="VOD playlist, once the replay is written.")
    thumbnail_url: str | None = Field(
        description="JPEG of the broadcast's first frame on the CDN (immutable), once written."
    )
    peak_viewers: int = Field(
        ge=0, description="The most people watching at once during the broadcast (so far)."
    )


class BroadcastList(BaseModel):
    """A stream's broadcasts, newest first (at most 50)."""

    broadcasts: list[BroadcastOut]


class Error(BaseModel):
    """Every error: a message and, for invalid input, one message per field."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": "Invalid stream.", "fields": {"title": "A title is required."}}]
        }
    )

    error: str
    fields: dict[str, str] = Field(default_factory=dict)
