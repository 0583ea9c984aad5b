"""The URLs a creator and a viewer need for a stream, in the exact forms OBS,
the SRS WebRTC SDK and WHIP clients expect."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from flask import url_for
from markupsafe import escape

from studio.models import Broadcast, ShareLink, Stream
from studio.storage import layout


def stream_key(stream: Stream) -> str:
    """What OBS calls the stream key: `{stream id}?secret={key}`."""
    return f"{stream.public_id}?secret={_secret(stream)}"


def ingest(stream: Stream, config: Mapping, protocols: tuple[str, ...]) -> dict:
    """Publish settings: RTMP server + key for OBS, and the WebRTC URLs
    (`None` when the media engine takes no WebRTC). `protocols` are the ways
    in the engine offers (`engines.current().ingest_protocols`)."""
    webrtc = "webrtc" in protocols
    return {
        "protocols": list(protocols),
        "rtmp_server": config["RTMP_URL"],
        "stream_key": stream_key(stream),
        "webrtc_url": webrtc_url(stream, config) if webrtc else None,
        "whip_url": whip_url(stream, config) if webrtc else None,
        "srt_url": srt_url(stream, config) if "srt" in protocols else None,
    }


def srt_url(stream: Stream, config: Mapping) -> str:
    """For SRT encoders (OBS, ffmpeg, vMix):
    `srt://{host}:10080?streamid=#!::r=live/{id}?secret={key},m=publish`.

    The stream id is SRS's access-control form: `r` the resource (app/stream
    with its query, where the secret travels as in RTMP), `m=publish`. Keys
    are URL-safe (no `,` or `&`), so the stream id needs no escaping."""
    resource = f"live/{stream.public_id}?secret={_secret(stream)}"
    return f"{config['SRT_URL']}?streamid=#!::r={resource},m=publish"


def webrtc_url(stream: Stream, config: Mapping) -> str:
    """For the SRS WebRTC SDK: `webrtc://{host[:port]}/live/{id}?schema=...&secret=...`.

    The SDK posts to `{schema}://{host}:{port or 443 for https}/rtc/v1/publish/`
    with the URL's query (srs5-contract.md §4.3). Without `schema` it would
    take the calling page's scheme (and port 1985 on an http page), so the
    URL would work only from some pages."""
    scheme = config["WEBRTC_ORIGIN"].split("://", 1)[0]
    return (
        f"webrtc://{config['WEBRTC_HOST']}/live/{stream.public_id}"
        f"?schema={scheme}&secret={_secret(stream)}"
    )


def whip_url(stream: Stream, config: Mapping) -> str:
    """For WHIP clients: `{WEBRTC_ORIGIN}/rtc/v1/whip/?app=live&stream={id}&secret=...`
    (STUDIO_WHIP_URL replaces the endpoint)."""
    endpoint = config.get("WHIP_URL") or config["WEBRTC_ORIGIN"] + "/rtc/v1/whip/"
    return f"{endpoint}?app=live&stream={stream.public_id}&secret={_secret(stream)}"


def whep_url(stream: Stream, config: Mapping) -> str:
    """WebRTC playback (WHEP, srs5-contract.md §4.2):
    `{WEBRTC_ORIGIN}/rtc/v1/whep/?app=live&stream={id}` (STUDIO_WHEP_URL
    replaces the endpoint). No secret: anyone may watch. A stream live on a
    media node of a pool adds `&node={id}`: the proxy in front of the pool
    sends the request to that node's engine (docs/architecture.md, "Media
    nodes")."""
    endpoint = config.get("WHEP_URL") or config["WEBRTC_ORIGIN"] + "/rtc/v1/whep/"
    url = f"{endpoint}?app=live&stream={quote(stream.public_id, safe='')}"
    node = live_node(stream)
    if node is not None and node != "default":
        url += f"&node={quote(node, safe='')}"
    return url


def live_node(stream: Stream) -> str | None:
    """The media node holding the stream's broadcast (None unless it is live
    or reconnecting)."""
    return stream.node_id if stream.status in ("live", "reconnecting") else None


def _secret(stream: Stream) -> str:
    return quote(stream.stream_key, safe="")


def hls_url(stream: Stream, config: Mapping) -> str:
    """The live playlist on the CDN."""
    return layout.public_url(
        config["CDN_URL"], layout.live_playlist(stream.public_id, stream.private)
    )


def replay_url(broadcast: Broadcast, config: Mapping) -> str | None:
    """The broadcast's VOD playlist on the CDN, once it has been written."""
    if broadcast.replay_ready_at is None:
        return None
    return layout.public_url(
        config["CDN_URL"],
        layout.replay_playlist(broadcast.stream.public_id, broadcast.id, broadcast.stream.private),
    )


def thumbnail_url(stream: Stream, config: Mapping) -> str | None:
    """A recent frame of the stream on the CDN (its latest broadcast's, about
    10 s old while live), once one has been written."""
    if stream.thumbnail_at is None:
        return None
    return layout.public_url(
        config["CDN_URL"], layout.live_thumbnail(stream.public_id, stream.private)
    )


def broadcast_thumbnail_url(broadcast: Broadcast, config: Mapping) -> str | None:
    """The broadcast's own thumbnail on the CDN (its replay's poster), once written."""
    if broadcast.thumbnail_at is None:
        return None
    return layout.public_url(
        config["CDN_URL"],
        layout.broadcast_thumbnail(
            broadcast.stream.public_id, broadcast.id, broadcast.stream.private
        ),
    )


def replay_page_url(broadcast: Broadcast, config: Mapping) -> str:
    """The public page that plays the broadcast's replay."""
    return config["PUBLIC_URL"] + url_for(
        "watch.replay", public_id=broadcast.stream.public_id, broadcast_id=broadcast.id
    )


def embed_url(stream: Stream, config: Mapping) -> str:
    """The player alone, for an <iframe> on any site."""
    return config["PUBLIC_URL"] + url_for("watch.embed", public_id=stream.public_id)


def embed_code(stream: Stream, config: Mapping) -> str:
    """The <iframe> HTML a creator pastes into a page: the title escaped, so a
    quote or a bracket in it cannot end the attribute."""
    return (
        f'<iframe src="{escape(embed_url(stream, config))}" width="640" height="400" '
        'allow="autoplay; fullscreen; picture-in-picture" allowfullscreen style="border:0" '
        f'title="{escape(stream.title)}"></iframe>'
    )


def watch_url(stream: Stream, config: Mapping) -> str:
    """The public watch page."""
    return config["PUBLIC_URL"] + url_for("watch.watch", public_id=stream.public_id)


def share_url(stream: Stream, link: ShareLink, config: Mapping) -> str:
    """A share link: the watch page with the link's secret. Shown to the
    owner only; the page redirects it to the plain URL once opened."""
    return watch_url(stream, config) + f"?share={quote(link.token, safe='')}"


def playback(stream: Stream, config: Mapping, protocols: tuple[str, ...] = ("hls",)) -> dict:
    """Viewer-facing URLs (safe to show anyone) and the playback modes offered:
    HLS from the CDN on every engine, WebRTC (WHEP) where the engine plays it
    (`protocols`: `engines.current().playback_protocols`)."""
    # A private stream plays only from the CDN with a signed cookie: WHEP has
    # no way to check who asks.
    webrtc = (
        "webrtc" in protocols
        and config.get("WHEP_MAX_VIEWERS", 0) > 0
        and stream.visibility != "private"
    )
    return {
        "modes": ["hls", "webrtc"] if webrtc else ["hls"],
        "hls_url": hls_url(stream, config),
        "whep_url": whep_url(stream, config) if webrtc else None,
        "watch_url": watch_url(stream, config),
    }


def starts_in_webrtc(viewers: int, config: Mapping) -> bool:
    """A viewer starts in WebRTC while the stream has fewer viewers than
    STUDIO_WHEP_MAX_VIEWERS (each WebRTC viewer costs the media server; HLS
    viewers cost the CDN). `viewers` are the others, not counting this one."""
    return viewers < config.get("WHEP_MAX_VIEWERS", 0)
