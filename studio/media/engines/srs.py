"""SRS 5: its `http_hooks` callbacks (JSON, one URL for every event) and
its HTTP API (srs5-contract.md §1, §3).

Callback field formats follow srs5-contract.md §1.5–1.7 (RTMP `param` is
`?secret=...`, WHIP `param` is `app=...&stream=...&secret=...`, `tcUrl`
empty for WHIP). SRT fires on_publish too (§1.7), but the contract records
no `param` format for it: from SRS's stream id parsing, the query after the
stream name of `#!::r=live/{id}?secret=...,m=publish` (and any extra
`key=value` of the stream id) arrives as `secret=...`, with or without a
leading `?`, and `tcUrl` starts with `srt://`; both forms are read alike.
`on_hls` facts (sequence number, duration, file) are handed on as SRS
reported them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs

import requests

from studio.core.commands import Command, Notice, Play, Publish, SegmentReady, Unpublish
from studio.media.engines.base import (
    TIMEOUT,
    CallbackError,
    EngineError,
    EngineSnapshot,
    HookRequest,
    IngestStats,
    Publisher,
)

NAME = "srs"

SRS_ACTIONS = {
    "on_connect",
    "on_close",
    "on_publish",
    "on_unpublish",
    "on_play",
    "on_stop",
    "on_dvr",
    "on_hls",
}
# Fields each SRS event must carry (beyond action and client_id) for us to act on it.
SRS_REQUIRED = {
    "on_publish": ("app", "stream", "param"),
    "on_unpublish": ("app", "stream"),
    "on_play": ("app", "stream"),
    "on_hls": ("app", "stream", "file", "m3u8", "seq_no", "duration"),
}
# Events counted by name in the metrics (SRS 5 also sends update_publish).
KNOWN_EVENTS = frozenset(SRS_ACTIONS | {"update_publish"})
# Longest value of each field stored on a broadcast (studio.models.Broadcast):
# SRS ids are a few characters, but a longer one must be refused, not truncated.
MAX_LENGTHS = {"client_id": 64, "server_id": 64, "service_id": 64, "ip": 64}


def _string(body: Mapping, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise CallbackError(f"Field '{key}' is required and must be a string.")
    return _bounded(key, value)


def _optional_string(body: Mapping, key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise CallbackError(f"Field '{key}' must be a string.")
    return _bounded(key, value)


def _bounded(key: str, value: str) -> str:
    limit = MAX_LENGTHS.get(key)
    if limit is not None and len(value) > limit:
        raise CallbackError(f"Field '{key}' is longer than {limit} characters.")
    return value


def secret_from_param(param: str, name: str = "secret") -> str:
    """The `secret` (or `name`) query value of an SRS `param` ('' when absent)."""
    values = parse_qs(param.lstrip("?"), keep_blank_values=True).get(name, [""])
    return values[0]


def srs_protocol(tc_url: str, param: str) -> str:
    """RTMP publishes carry an rtmp:// tcUrl; WHIP sends '', the legacy RTC API webrtc://,
    SRT srt://. The studio's own websocket relay publishes RTMP with `ingest=websocket`."""
    if tc_url.startswith("srt://"):
        return "srt"
    if tc_url.startswith("webrtc://") or tc_url == "" or "upstream=rtc" in param:
        return "webrtc"
    if parse_qs(param.lstrip("?")).get("ingest") == ["websocket"]:
        return "websocket"
    return "rtmp"


def srs_callback(body: Mapping) -> Command:
    """Validate an SRS 5 callback body into a command; raises CallbackError."""
    action = _string(body, "action")
    if action not in SRS_ACTIONS:
        raise CallbackError(f"Unknown action '{action}'.")
    client_id = _string(body, "client_id")
    if not client_id:
        raise CallbackError("Field 'client_id' must not be empty.")
    for key in SRS_REQUIRED.get(action, ()):
        if key not in body:
            raise CallbackError(f"Field '{key}' is required for {action}.")
    param = _optional_string(body, "param")
    tc_url = _optional_string(body, "tcUrl")
    app = _optional_string(body, "app")
    stream = _optional_string(body, "stream")
    server_id = _optional_string(body, "server_id")
    # Validated for every event: a malformed id is refused whatever the action.
    service_id = _optional_string(body, "service_id")
    ip = _optional_string(body, "ip")
    if action == "on_publish":
        return Publish(
            stream=stream,
            client_id=client_id,
            app=app,
            secret=secret_from_param(param),
            ticket=secret_from_param(param, "ticket"),
            protocol=srs_protocol(tc_url, param),
            server_id=server_id,
            service_id=service_id,
            ip=ip,
        )
    if action == "on_unpublish":
        return Unpublish(stream, client_id, app, server_id)
    if action == "on_hls":
        return _segment_ready(body, stream, client_id, app)
    if action == "on_play":
        return Play(stream, client_id, app, grant=secret_from_param(param, "grant"))
    return Notice(action)


def _segment_ready(body: Mapping, stream: str, client_id: str, app: str) -> SegmentReady:
    seq_no, duration = body.get("seq_no"), body.get("duration")
    if not isinstance(seq_no, int) or isinstance(seq_no, bool) or seq_no < 0:
        raise CallbackError("Field 'seq_no' must be a non-negative integer.")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
        raise CallbackError("Field 'duration' must be a non-negative number.")
    path = _string(body, "file")
    _string(body, "m3u8")
    return SegmentReady(stream, client_id, seq_no, float(duration), path, app)


class Callbacks:
    """SRS 5 `http_hooks`: a JSON body; a refusal is HTTP 200 with a non-zero `code`."""

    name = NAME
    refusal_status = 200

    def event(self, request: HookRequest) -> str:
        """The `action` of the body, for metrics ("other" when unknown)."""
        body = request.get_json(silent=True)
        action = body.get("action") if isinstance(body, dict) else None
        return action if action in KNOWN_EVENTS else "other"

    def parse(self, request: HookRequest) -> Command:
        """The callback as a domain command; raises CallbackError."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise CallbackError("Body must be a JSON object.")
        return srs_callback(body)


# --- the HTTP API (srs5-contract.md §3) --------------------------------------


class Engine:
    """SRS 5 as the studio's media engine: RTMP, WebRTC (WHIP and the
    SDK's /rtc/v1/publish/, srs5-contract.md §4) and SRT in, HLS out."""

    name = NAME
    ingest_protocols = ("rtmp", "webrtc", "srt")
    # WHEP: `rtmp_to_rtc on` in srs/srs.conf (RTMP and WHIP streams alike).
    playback_protocols = ("hls", "webrtc")
    announces_segments = True  # on_hls

    def __init__(self, api_url: str):
        self.api_url = api_url

    def drop_publisher(self, publisher: Publisher) -> bool:
        """Kick the publisher's client; False if SRS no longer had it."""
        url = f"{self.api_url}/api/v1/clients/{publisher.client_id}"
        try:
            body = requests.delete(url, timeout=TIMEOUT).json()
        except (requests.RequestException, ValueError) as exc:
            raise EngineError(f"SRS drop failed: {exc}") from exc
        return body.get("code") == 0

    def publishers(self) -> list[IngestStats]:
        """Every publisher SRS has live right now."""
        return publishers_from(self._get("/api/v1/streams/?start=0&count=1000"))

    def stats(self) -> EngineSnapshot:
        """Live publishers and SRS's service id (new on every restart), in one call."""
        body = self._get("/api/v1/streams/?start=0&count=1000")
        return EngineSnapshot(str(body.get("service") or ""), publishers_from(body))

    def _get(self, path: str) -> dict:
        try:
            reply = requests.get(self.api_url + path, timeout=TIMEOUT)
            reply.raise_for_status()
            return reply.json()
        except (requests.RequestException, ValueError) as exc:
            raise EngineError(f"SRS API {path} failed: {exc}") from exc


def publishers_from(body: dict) -> list[IngestStats]:
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
                bytes_in=item.get("recv_bytes"),
                video_codec=video.get("codec"),
                width=video.get("width"),
                height=video.get("height"),
                audio_codec=audio.get("codec"),
                extra={"app": item.get("app"), "service": body.get("service")},
            )
        )
    return publishers
