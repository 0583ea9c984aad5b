"""What every media engine offers the studio, and the values it returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from studio.core.commands import Command

TIMEOUT = 2.0  # seconds for every call to an engine's API


@dataclass(frozen=True)
class Publisher:
    """A publisher as the engine knows it."""

    stream_name: str
    client_id: str
    server_id: str = ""


@dataclass
class IngestStats:
    """What the engine sees of a live publisher."""

    stream_name: str
    client_id: str = ""
    # Inbound bitrate as the engine averages it (over ~10-30 s: 0 for the
    # first seconds of a broadcast), and the bytes received so far, from
    # which `IngestRates` measures a current rate.
    kbps: int | None = 0
    bytes_in: int | None = None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_codec: str | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "kbps": self.kbps,
            "video_codec": self.video_codec,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "audio_codec": self.audio_codec,
        }


@dataclass
class EngineSnapshot:
    """The engine's live publishers and the identity of the running engine
    process (an id that changes on every restart; "" when the engine has none)."""

    service_id: str
    publishers: list[IngestStats]


class EngineError(Exception):
    """The media server could not be reached or refused the request."""


class CallbackError(ValueError):
    """The callback body is malformed; the message says what is wrong."""


class HookRequest(Protocol):
    """The parts of an HTTP request a callback dialect reads."""

    form: Mapping[str, str]

    def get_json(self, silent: bool = ...) -> object: ...


class CallbackDialect(Protocol):
    """How one engine calls the studio back (`/hooks/<name>`)."""

    name: str  # the URL segment and the metrics label
    refusal_status: int  # the HTTP status that refuses a publish

    def event(self, request: HookRequest) -> str:
        """The callback's event name, for metrics ("other" when unknown)."""

    def parse(self, request: HookRequest) -> Command:
        """The callback as a domain command; raises CallbackError."""


class MediaEngine(Protocol):
    """The running media server, chosen once at start-up."""

    name: str
    # The publish protocols it accepts ("rtmp", "webrtc", "srt"); the studio's own
    # websocket ingest publishes RTMP, so it is on every engine and not listed.
    ingest_protocols: tuple[str, ...]
    # How viewers can watch ("hls" from the CDN on every engine; "webrtc":
    # WHEP from the media server itself).
    playback_protocols: tuple[str, ...]
    # Whether it calls back for every segment it closes (SRS's on_hls): then
    # the callback queues the sync, and the HLS watcher only sweeps for what
    # a lost callback left behind instead of also reacting to every write.
    announces_segments: bool

    def drop_publisher(self, publisher: Publisher) -> bool:
        """Disconnect a publisher now; False if it was already gone. Raises EngineError."""

    def publishers(self) -> list[IngestStats]:
        """Every publisher live right now. Raises EngineError."""

    def stats(self) -> EngineSnapshot:
        """Live publishers and the engine's service id in one call. Raises EngineError."""
