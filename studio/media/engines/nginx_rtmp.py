"""nginx-rtmp (bare metal, development and the tests): its `on_publish` /
`on_publish_done` callbacks (form-encoded) and its control and stat modules.

It has no segment callback: the directory watcher notices new segments and
the sync job derives their numbers and lengths from the files.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

import requests

from studio.core.commands import Command, Publish, Unpublish
from studio.media.engines.base import (
    TIMEOUT,
    CallbackError,
    EngineError,
    EngineSnapshot,
    HookRequest,
    IngestStats,
    Publisher,
)

NAME = "nginx-rtmp"
CALLS = {"publish": "on_publish", "publish_done": "on_unpublish"}
# nginx-rtmp reuses client ids after a restart and has no service id; its
# broadcasts are told apart from another engine's by this server id.
SERVER_ID = "nginx-rtmp"
# Longest value of each form field stored on a broadcast (studio.models.Broadcast).
MAX_LENGTHS = {"clientid": 64, "addr": 64}


def _bounded(key: str, value: str) -> str:
    limit = MAX_LENGTHS[key]
    if len(value) > limit:
        raise CallbackError(f"Field '{key}' is longer than {limit} characters.")
    return value


def nginx_callback(form: Mapping) -> Command:
    """Validate an nginx-rtmp `on_publish`/`on_publish_done` form into a
    command; raises CallbackError."""
    call = form.get("call", "")
    if call not in CALLS:
        raise CallbackError(f"Unknown call '{call}'.")
    for key in ("name", "clientid", "app"):
        if not form.get(key):
            raise CallbackError(f"Field '{key}' is required.")
    client_id = _bounded("clientid", form["clientid"])
    ip = _bounded("addr", form.get("addr", ""))
    if CALLS[call] == "on_unpublish":
        return Unpublish(form["name"], client_id, form["app"], SERVER_ID)
    return Publish(
        stream=form["name"],
        client_id=client_id,
        app=form["app"],
        secret=form.get("secret", ""),
        ticket=form.get("ticket", ""),
        protocol="websocket" if form.get("ingest") == "websocket" else "rtmp",
        server_id=SERVER_ID,
        ip=ip,
    )


class Callbacks:
    """nginx-rtmp `on_publish`/`on_publish_done`: a form; any non-2xx refuses."""

    name = NAME
    refusal_status = 403

    def event(self, request: HookRequest) -> str:
        """The form's `call`, for metrics ("other" when unknown)."""
        call = request.form.get("call")
        return call if call in CALLS else "other"

    def parse(self, request: HookRequest) -> Command:
        """The callback as a domain command; raises CallbackError."""
        return nginx_callback(request.form)


class Engine:
    """nginx-rtmp as the studio's media engine: RTMP in (no WebRTC), HLS out."""

    name = NAME
    ingest_protocols = ("rtmp",)
    playback_protocols = ("hls",)
    announces_segments = False

    def __init__(self, control_url: str):
        self.control_url = control_url

    def drop_publisher(self, publisher: Publisher) -> bool:
        """Drop the stream's publisher (control module); False if none was there."""
        url = self.control_url + "/control/drop/publisher"
        params = {"app": "live", "name": publisher.stream_name}
        try:
            reply = requests.get(url, params=params, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise EngineError(f"nginx-rtmp drop failed: {exc}") from exc
        return reply.status_code == 200 and reply.text.strip() not in ("", "0")

    def publishers(self) -> list[IngestStats]:
        """Every publisher live right now (stat module)."""
        try:
            reply = requests.get(self.control_url + "/stat", timeout=TIMEOUT)
            reply.raise_for_status()
        except requests.RequestException as exc:
            raise EngineError(f"nginx-rtmp stat failed: {exc}") from exc
        return publishers_from(reply.text)

    def stats(self) -> EngineSnapshot:
        """Live publishers; nginx-rtmp has no service id."""
        return EngineSnapshot("", self.publishers())


def publishers_from(xml_text: str) -> list[IngestStats]:
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
                bytes_in=_int(stream.findtext("bytes_in")),
                video_codec=video.findtext("codec") if video is not None else None,
                width=_int(video.findtext("width")) if video is not None else None,
                height=_int(video.findtext("height")) if video is not None else None,
                fps=_float(video.findtext("frame_rate")) if video is not None else None,
                audio_codec=audio.findtext("codec") if audio is not None else None,
            )
        )
    return publishers


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
