"""What a media server asks of the studio, in the domain's words. An engine
adapter (`studio.media.engines`) turns its callbacks into these; the hooks
views and the upload pipeline act on them without knowing the engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Publish:
    """A publisher asks to go live on `stream` (proving itself with the
    stream's secret or a publish ticket of the studio's own relay)."""

    stream: str
    client_id: str
    app: str = ""
    secret: str = ""
    ticket: str = ""
    protocol: str = "rtmp"
    server_id: str = ""
    service_id: str = ""
    ip: str = ""


@dataclass(frozen=True)
class Unpublish:
    """A publisher left `stream`."""

    stream: str
    client_id: str
    app: str = ""
    server_id: str = ""


@dataclass(frozen=True)
class SegmentReady:
    """A segment of `stream` is complete on the engine's disk: its sequence
    number, length in seconds and file, as the engine reported them."""

    stream: str
    client_id: str
    seq: int
    duration: float
    path: str
    app: str = ""


@dataclass(frozen=True)
class Play:
    """A player asks the media server for `stream` (RTMP or WebRTC playback
    straight from the engine); `grant` is a play grant of the studio's own
    multistream relay, if it carries one."""

    stream: str
    client_id: str
    app: str = ""
    grant: str = ""


@dataclass(frozen=True)
class Notice:
    """A callback with nothing to decide (connect, stop, ...)."""

    action: str


Command = Publish | Unpublish | SegmentReady | Play | Notice
