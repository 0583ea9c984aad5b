"""The media server behind one adapter: SRS 5 in production, nginx-rtmp on
bare metal, in development and in the tests.

The rest of the studio speaks of publishers and streams; only this module
knows SRS's HTTP API and nginx-rtmp's control/stat endpoints.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import requests
from flask import current_app

log = logging.getLogger(__name__)
TIMEOUT = 2.0


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
    kbps: int = 0
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


class EngineError(Exception):
    """The media server could not be reached or refused the request."""


# What creators may publish with, per engine: SRS 5 takes RTMP and WebRTC
# (WHIP and the SDK's /rtc/v1/publish/, srs5-contract.md §4); nginx-rtmp has
# no WebRTC at all. The websocket ingest is the studio's own (it publishes
# RTMP), so every engine has it and it is not listed here.
_INGEST_PROTOCOLS = {"srs": ("rtmp", "webrtc"), "nginx-rtmp": ("rtmp",)}
# How viewers watch: HLS from the CDN on every engine. WHEP (`/rtc/v1/whep/`)
# is routed by nginx but not offered: srs.conf keeps `rtmp_to_rtc off`, so
# SRS would refuse to play an RTMP-published stream over WebRTC.
PLAYBACK_MODES = ("hls",)


def ingest_protocols(engine_name: str) -> tuple[str, ...]:
    """The publish protocols `engine_name` accepts ("rtmp", "webrtc").

    An unknown name is treated as nginx-rtmp, as every other call here does."""
    return _INGEST_PROTOCOLS.get(engine_name, _INGEST_PROTOCOLS["nginx-rtmp"])


def _engine_name() -> str:
    return current_app.config["MEDIA_ENGINE"]


def drop_publisher(publisher: Publisher) -> bool:
    """Disconnect a publisher now. Returns False if it was already gone."""
    if _engine_name() == "srs":
        return _srs_drop(publisher)
    return _nginx_drop(publisher)


def live_publishers() -> list[IngestStats]:
    """Every publisher currently live on the engine (for reconcile and stats)."""
    if _engine_name() == "srs":
        return _srs_publishers()
    return _nginx_publishers()


@dataclass
class EngineSnapshot:
    """The engine's live publishers and the identity of the running engine
    process (SRS's `service` id changes on every restart; "" for nginx-rtmp)."""

    service_id: str
    publishers: list[IngestStats]


def snapshot() -> EngineSnapshot:
    """Live publishers and service id in one API call (for the reconciler)."""
    if _engine_name() == "srs":
        body = _srs_get("/api/v1/streams/?start=0&count=1000")
        return EngineSnapshot(str(body.get("service") or ""), srs_publishers_from(body))
    return EngineSnapshot("", _nginx_publishers())


def ingest_stats(stream_name: str) -> IngestStats | None:
    """Live ingest stats of one stream, or None when nothing publishes it."""
    for stats in live_publishers():
        if stats.stream_name == stream_name:
            return stats
    return None


# --- SRS 5 (HTTP API, see srs5-contract.md §3) -------------------------------


def _srs_get(path: str) -> dict:
    url = current_app.config["SRS_API_URL"] + path
    try:
        reply = requests.get(url, timeout=TIMEOUT)
        reply.raise_for_status()
        return reply.json()
    except (requests.RequestException, ValueError) as exc:
        raise EngineError(f"SRS API {path} failed: {exc}") from exc


def _srs_drop(publisher: Publisher) -> bool:
    url = f"{current_app.config['SRS_API_URL']}/api/v1/clients/{publisher.client_id}"
    try:
        body = requests.delete(url, timeout=TIMEOUT).json()
    except (requests.RequestException, ValueError) as exc:
        raise EngineError(f"SRS drop failed: {exc}") from exc
    return body.get("code") == 0


def srs_publishers_from(body: dict) -> list[IngestStats]:
    """Parse SRS `/api/v1/streams/` into live publishers."""
    publishers = []
    for item in body.get("streams", []):
        publish = item.get("publish") or {}
        if not publish.get("active"):
            continue
        video = item.get("video") or {}
        audio = item.get("audio") or {}
        publishers.append(
            IngestStats(
                stream_name=item.get("name", ""),
                client_id=publish.get("cid", ""),
                kbps=(item.get("kbps") or {}).get("recv_30s", 0),
                video_codec=video.get("codec"),
                width=video.get("width"),
                height=video.get("height"),
                audio_codec=audio.get("codec"),
                extra={"app": item.get("app"), "service": body.get("service")},
            )
        )
    return publishers


def _srs_publishers() -> list[IngestStats]:
    return srs_publishers_from(_srs_get("/api/v1/streams/?start=0&count=1000"))


# --- nginx-rtmp (control + stat modules) ------------------------------------


def _nginx_drop(publisher: Publisher) -> bool:
    url = current_app.config["NGINX_CONTROL_URL"] + "/control/drop/publisher"
    try:
        reply = requests.get(
            url, params={"app": "live", "name": publisher.stream_name}, timeout=TIMEOUT
        )
    except requests.RequestException as exc:
        raise EngineError(f"nginx-rtmp drop failed: {exc}") from exc
    return reply.status_code == 200 and reply.text.strip() not in ("", "0")


def nginx_publishers_from(xml_text: str) -> list[IngestStats]:
    """Parse nginx-rtmp `/stat` XML into live publishers."""
    publishers = []
    root = ET.fromstring(xml_text)  # noqa: S314 (our own nginx, on a private port)
    for stream in root.iter("stream"):
        client = next((c for c in stream.iter("client") if c.find("publishing") is not None), None)
        if client is None:
            continue
        video = stream.find("meta/video")
        audio = stream.find("meta/audio")
        publishers.append(
            IngestStats(
                stream_name=stream.findtext("name", ""),
                client_id=client.findtext("id", ""),
                kbps=int(stream.findtext("bw_in", "0")) // 1000,
                video_codec=video.findtext("codec") if video is not None else None,
                width=_int(video.findtext("width")) if video is not None else None,
                height=_int(video.findtext("height")) if video is not None else None,
                fps=_float(video.findtext("frame_rate")) if video is not None else None,
                audio_codec=audio.findtext("codec") if audio is not None else None,
            )
        )
    return publishers


def _nginx_publishers() -> list[IngestStats]:
    url = current_app.config["NGINX_CONTROL_URL"] + "/stat"
    try:
        reply = requests.get(url, timeout=TIMEOUT)
        reply.raise_for_status()
    except requests.RequestException as exc:
        raise EngineError(f"nginx-rtmp stat failed: {exc}") from exc
    return nginx_publishers_from(reply.text)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
