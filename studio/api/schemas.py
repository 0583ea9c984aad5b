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

from studio.core.refusals import REFUSAL_REASONS
from studio.models import INGEST_PROTOCOLS, STREAM_STATUSES, VISIBILITIES
from studio.streams.reconnect import RECONNECT_WINDOW_DEFAULT, RECONNECT_WINDOW_MAX
from studio.streams.service import PUBLIC_ID_LENGTH, TITLE_MAX
from studio.webhooks.addresses import URL_MAX
from studio.webhooks.service import EVENT_TYPES

Status = Literal[STREAM_STATUSES]  # type: ignore[valid-type]
Protocol = Literal[INGEST_PROTOCOLS]  # type: ignore[valid-type]
IngestProtocol = Literal["rtmp", "webrtc", "srt"]
Visibility = Literal[VISIBILITIES]  # type: ignore[valid-type]
VISIBILITY_DESCRIPTION = (
    "`public`: on the home page and playable by anyone; `unlisted`: playable by anyone "
    "with the URL, never listed; `private`: only you (signed in) and holders of one of "
    "its share links can watch; its video is served only with a short-lived signed CDN cookie."
)
PlaybackMode = Literal["hls", "webrtc"]

# Documented limits of a title; `clean_title` enforces them after trimming spaces.
_TITLE_SCHEMA = {"minLength": 1, "maxLength": TITLE_MAX}
# What `new_public_id` makes (PUBLIC_ID_ALPHABET: lowercase letters and digits).
PUBLIC_ID_PATTERN = f"^[a-z0-9]{{{PUBLIC_ID_LENGTH}}}$"
_RECONNECT_WINDOW = (
    "Seconds a publisher that dropped has to come back and continue the same broadcast "
    f"(viewers see the stream as reconnecting meanwhile); 0 ends a broadcast at its "
    f"publisher's first drop. 0 to {RECONNECT_WINDOW_MAX}."
)


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
    visibility: Visibility = Field(default="public", description=VISIBILITY_DESCRIPTION)
    reconnect_window: int = Field(
        default=RECONNECT_WINDOW_DEFAULT,
        ge=0,
        le=RECONNECT_WINDOW_MAX,
        description=_RECONNECT_WINDOW,
    )


def _update_schema(schema: dict) -> None:
    # The `None` defaults only mean "absent"; null itself is refused.
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
    schema["minProperties"] = 1


class StreamUpdate(Request):
    """Change a stream: any of its title, disabled flag, visibility and reconnect window."""

    model_config = ConfigDict(
        json_schema_extra=_update_schema,
        openapi_extra={  # type: ignore[typeddict-unknown-key]
            "examples": {
                "disable": {"value": {"disabled": True}},
                "rename": {"value": {"title": "New title", "disabled": False}},
                "private": {"value": {"visibility": "private"}},
                "no reconnect window": {"value": {"reconnect_window": 0}},
            }
        },
    )

    # Absent means "leave as is"; null is refused (these fields are never empty).
    title: str = Field(default=None, json_schema_extra=_TITLE_SCHEMA)  # type: ignore[assignment]
    disabled: bool = Field(  # type: ignore[assignment]
        default=None,
        description=(
            "A disabled stream refuses publish; the broadcast under way (live or "
            "reconnecting) ends and a live publisher is dropped."
        ),
    )
    reconnect_window: int = Field(  # type: ignore[assignment]
        default=None,
        ge=0,
        le=RECONNECT_WINDOW_MAX,
        description=_RECONNECT_WINDOW + " Applies from the next drop on.",
    )
    visibility: Visibility = Field(  # type: ignore[assignment]
        default=None,
        description=VISIBILITY_DESCRIPTION
        + " Changing it while live keeps the stream playing for whoever may still watch.",
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> StreamUpdate:
        if not self.model_fields_set:
            raise ValueError("Give at least one of: title, disabled, visibility, reconnect_window.")
        return self


class Ingest(BaseModel):
    """Publish settings. They contain the secret key: only the owner sees them."""

    protocols: list[IngestProtocol] = Field(
        description=(
            "How this server's media engine takes a stream: `rtmp` always, `webrtc` "
            "(WHIP and the SRS SDK) and `srt` only on SRS. The browser's go-live page works "
            "on every engine."
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
    srt_url: str | None = Field(
        description=(
            "For SRT encoders (OBS, ffmpeg): srt://{host}:10080?streamid=#!::r=live/{stream id}"
            "?secret={key},m=publish. null when `protocols` has no `srt` (nginx-rtmp)."
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
    hls_url: str = Field(
        description=(
            "Live HLS playlist on the CDN. A private stream's is served only with the "
            "signed cookie its watch page sets for allowed viewers."
        )
    )
    whep_url: str | None = Field(
        description=(
            "WebRTC playback (WHEP): POST an SDP offer (recvonly audio and video) here, "
            "get a 201 with the SDP answer, DELETE its Location to stop. No secret. "
            "null when `modes` has no `webrtc` (nginx-rtmp, a private stream, or WebRTC "
            "playback turned off)."
        )
    )
    watch_url: str = Field(description="Public watch page.")


RefusalReason = Literal[REFUSAL_REASONS]  # type: ignore[valid-type]


class RefusedPublishOut(BaseModel):
    """A publish the studio refused for this stream (wrong or old key, ...)."""

    refused_at: datetime
    address: str | None = Field(
        description="The publisher's IP address, as the media server saw it."
    )
    reason: RefusalReason = Field(  # type: ignore[valid-type]
        description=(
            "`old key`: a key that is not the stream's current one; `stream disabled`; "
            "`already live`: another publisher is live; `live limit`: your live-stream limit."
        )
    )


class StreamOut(BaseModel):
    """A stream as its owner sees it."""

    id: str = Field(
        description="Public id: the stream name in every URL. Not a secret.",
        pattern=PUBLIC_ID_PATTERN,
    )
    title: str
    status: Status = Field(
        description=(
            "`created`, `live`, `reconnecting` (the publisher dropped; the broadcast goes on "
            "if it returns before `reconnect_deadline`) or `ended`."
        )
    )
    disabled: bool
    visibility: Visibility = Field(description=VISIBILITY_DESCRIPTION)
    reconnect_window: int = Field(ge=0, le=RECONNECT_WINDOW_MAX, description=_RECONNECT_WINDOW)
    reconnect_deadline: datetime | None = Field(
        description="While `reconnecting`: when the broadcast ends unless a publisher returns."
    )
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
    node: str | None = Field(
        description=(
            "The media node holding the broadcast while `live` or `reconnecting` "
            "(`default` on a single machine); null otherwise."
        ),
        pattern=r"^[a-z0-9-]{1,32}$",
    )
    ingest: Ingest
    playback: Playback
    last_refused_publish: RefusedPublishOut | None = Field(
        description="The latest refused publish of this stream (e.g. OBS with an old key); "
        "null if none was recorded. At most one per reason is recorded every 10 s."
    )


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


class ShareLinkPath(StreamPath):
    """The path of one share link."""

    link_id: int = Field(description="The share link's `id`.", ge=1, le=2**31 - 1)


class ShareLinkOut(BaseModel):
    """A secret link to a private stream's watch page. Whoever opens it can
    watch until you revoke it; it does nothing for a stream that is not private."""

    id: int
    url: str = Field(description="The watch page with the link's secret (`?share=...`).")
    created_at: datetime


class ShareLinkList(BaseModel):
    """A stream's share links, oldest first."""

    share_links: list[ShareLinkOut]


class Error(BaseModel):
    """Every error: a message and, for invalid input, one message per field."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": "Invalid stream.", "fields": {"title": "A title is required."}}]
        }
    )

    error: str
    fields: dict[str, str] = Field(default_factory=dict)


# --- webhooks ---------------------------------------------------------------

WebhookEventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class WebhookPath(BaseModel):
    """The path of a webhook's URLs."""

    webhook_id: int = Field(ge=1, le=2**31 - 1, description="The webhook's `id`.")


class WebhookCreate(Request):
    """Register a webhook endpoint."""

    model_config = ConfigDict(
        openapi_extra={  # type: ignore[typeddict-unknown-key]
            "examples": {
                "create": {
                    "value": {
                        "url": "https://example.com/studio-events",
                        "events": ["stream.live", "stream.ended"],
                    }
                }
            }
        }
    )

    url: str = Field(
        description=(
            "http(s) URL without credentials; its host must resolve to public addresses only."
        ),
        json_schema_extra={"minLength": 1, "maxLength": URL_MAX},
    )
    events: list[WebhookEventType] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=len(EVENT_TYPES), description="The events this URL hears."
    )


class WebhookOut(BaseModel):
    """A webhook endpoint (its secret is only in the reply that created it)."""

    id: int
    url: str
    events: list[WebhookEventType]  # type: ignore[valid-type]
    enabled: bool = Field(
        description="False once an event failed every delivery attempt for a day; "
        "a successful test event enables it again."
    )
    disabled_reason: str | None
    created_at: datetime
    last_success_at: datetime | None
    last_failure_at: datetime | None


class WebhookCreated(WebhookOut):
    """The new endpoint with its signing secret: shown this once, keep it."""

    secret: str = Field(description="Verifies `Studio-Signature` (see docs/webhooks.md).")


class WebhookList(BaseModel):
    """Your webhook endpoints, newest first."""

    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One delivery attempt."""

    event_id: str
    event_type: str
    attempt: int = Field(ge=1, description="1 for the first try, 2 for the first retry, ...")
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    ok: bool
    error: str | None
    duration_ms: int
    attempted_at: datetime


class DeliveryList(BaseModel):
    """The endpoint's last delivery attempts, newest first (at most 50 are kept)."""

    deliveries: list[DeliveryOut]


class TestQueued(BaseModel):
    """The test event was queued; its outcome appears in the delivery log."""

    event_id: str
