"""The URLs a creator and a viewer need for a stream, in the exact forms OBS,
the SRS WebRTC SDK and WHIP clients expect."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from flask import url_for

from studio.models import Broadcast, Stream
from studio.storage import layout


def stream_key(stream: Stream) -> str:
    """What OBS calls the stream key: `{stream id}?secret={key}`."""
    return f"{stream.public_id}?secret={quote(stream.stream_key, safe='')}"


def ingest(stream: Stream, config: Mapping) -> dict[str, str]:
    """Publish settings: RTMP server + key for OBS, WebRTC and WHIP URLs."""
    secret = quote(stream.stream_key, safe="")
    return {
        "rtmp_server": config["RTMP_URL"],
        "stream_key": stream_key(stream),
        "webrtc_url": f"webrtc://{config['WEBRTC_HOST']}/live/{stream.public_id}?secret={secret}",
        # STUDIO_WHIP_URL: the studio's own origin, where nginx proxies to SRS.
        "whip_url": (
            f"{config.get('WHIP_URL') or config['PUBLIC_URL'] + '/rtc/v1/whip/'}?app=live"
            f"&stream={stream.public_id}&secret={secret}"
        ),
    }


def hls_url(stream: Stream, config: Mapping) -> str:
    """The live playlist on the CDN."""
    return layout.public_url(config["CDN_URL"], layout.live_playlist(stream.public_id))


def replay_url(broadcast: Broadcast, config: Mapping) -> str | None:
    """The broadcast's VOD playlist on the CDN, once it has been written."""
    if broadcast.replay_ready_at is None:
        return None
    return layout.public_url(
        config["CDN_URL"], layout.replay_playlist(broadcast.stream.public_id, broadcast.id)
    )


def watch_url(stream: Stream, config: Mapping) -> str:
    """The public watch page."""
    return config["PUBLIC_URL"] + url_for("watch.watch", public_id=stream.public_id)


def playback(stream: Stream, config: Mapping) -> dict[str, str]:
    """Viewer-facing URLs (safe to show anyone)."""
    return {"hls_url": hls_url(stream, config), "watch_url": watch_url(stream, config)}
