"""Request and response bodies of the multistream targets API.

The models check JSON types, which fields exist and the documented bounds;
the rules themselves (schemes, host, control characters, the per-stream
limit) stay in `studio.streams.targets`, which every surface calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from studio.api.schemas import PUBLIC_ID_PATTERN, Request
from studio.models import TARGET_STATES
from studio.streams.targets import KEY_MAX, NAME_MAX, URL_MAX

TargetState = Literal[TARGET_STATES]  # type: ignore[valid-type]
_NAME = {"minLength": 1, "maxLength": NAME_MAX}
_URL = {"minLength": 1, "maxLength": URL_MAX, "pattern": "^[Rr][Tt][Mm][Pp][Ss]?://"}
_KEY = {"minLength": 1, "maxLength": KEY_MAX}
URL_HELP = (
    "The service's RTMP server: rtmp:// or rtmps:// with a host (YouTube "
    "rtmps://a.rtmps.youtube.com:443/live2, Twitch rtmp://live.twitch.tv/app, Facebook "
    "rtmps://live-api-s.facebook.com:443/rtmp). The relay publishes to {url}/{key}."
)
KEY_HELP = "The stream key the service gave you. Stored encrypted; never shown again."


class TargetPath(BaseModel):
    """The path of one target."""

    stream_id: str = Field(description="The stream's public id.", pattern=PUBLIC_ID_PATTERN)
    target_id: int = Field(description="The target's `id`.", ge=1, le=2**31 - 1)


class TargetCreate(Request):
    """Add a target."""

    model_config = ConfigDict(
        openapi_extra={  # type: ignore[typeddict-unknown-key]
            "examples": {
                "twitch": {
                    "value": {
                        "name": "Twitch",
                        "url": "rtmp://live.twitch.tv/app",
                        "key": "live_123456789_abcdefghijklmnopqrstuvwxyz",
                        "enabled": True,
                    }
                }
            }
        }
    )

    name: str = Field(description="Your label for it.", json_schema_extra=_NAME)
    url: str = Field(description=URL_HELP, json_schema_extra=_URL)
    key: str = Field(description=KEY_HELP, json_schema_extra=_KEY)
    enabled: bool = Field(
        default=True, description="Relayed while the stream is live (default true)."
    )


def _update_schema(schema: dict) -> None:
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)
    schema["minProperties"] = 1


class TargetUpdate(Request):
    """Change a target: any of its fields."""

    model_config = ConfigDict(
        json_schema_extra=_update_schema,
        openapi_extra={  # type: ignore[typeddict-unknown-key]
            "examples": {"disable": {"value": {"enabled": False}}}
        },
    )

    name: str = Field(default=None, json_schema_extra=_NAME)  # type: ignore[assignment]
    url: str = Field(default=None, description=URL_HELP, json_schema_extra=_URL)  # type: ignore[assignment]
    key: str = Field(default=None, description=KEY_HELP, json_schema_extra=_KEY)  # type: ignore[assignment]
    enabled: bool = Field(  # type: ignore[assignment]
        default=None,
        description="Enabling while live starts the relay at once; disabling stops it.",
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> TargetUpdate:
        if not self.model_fields_set:
            raise ValueError("Give at least one of: name, url, key, enabled.")
        return self


class TargetOut(BaseModel):
    """A target as its owner sees it (never its key)."""

    id: int
    name: str
    url: str
    key_hint: str = Field(
        description="The key's last 4 characters (empty for a key of 8 or fewer)."
    )
    enabled: bool
    state: TargetState = Field(
        description=(
            "`stopped` (not relaying: the stream is not live or the target is disabled), "
            "`connecting`, `live` (the service is receiving), `retrying` (the last attempt "
            "failed: see `last_error`; it retries with backoff)."
        )
    )
    last_error: str | None = Field(description="Why the last attempt failed, if one did.")
    state_changed_at: datetime | None
    created_at: datetime


class TargetList(BaseModel):
    """A stream's targets, oldest first."""

    targets: list[TargetOut]
