"""End to end with real media: ffmpeg publishes RTMP as OBS would, nginx-rtmp
ingests, the workers upload HLS to the bucket (fake-gcs-server), the CDN edge
(nginx proxy_cache) serves it, Chromium plays it with hls.js; then the replay."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import time
from urllib.parse import quote, urljoin

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.pages import RegisterPage, StreamPage, StreamsPage, WatchPage

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
SEGMENT_CACHE = "public, max-age=31536000, immutable"
_emails = itertools.count(1)


def stop_publisher(process: subprocess.Popen) -> None:
    """Stop the way OBS does: finish the stream and close the connection."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def object_metadata(stack, name: str) -> dict:
    """An object's metadata straight from the bucket (not through the CDN)."""
    url = f"{stack.gcs_url}/storage/v1/b/{stack.bucket}/o/{quote(name, safe='')}"
    reply = requests.get(url, timeout=5)
    assert reply.status_code == 200, f"{name} is not in the bucket ({reply.status_code})"
    return reply.json()


def playlist_entries(text: str) -> tuple[float, list[str]]:
    """(target duration, segment URIs) of an HLS media playlist."""
    target = float(re.search(r"#EXT-X-TARGETDURATION:(\d+)", text).group(1))
    uris = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
    return target, uris


def max_age(cache_control: str) -> int:
    match = re.search(r"max-age=(\d+)", cache_control or "")
    assert match, f"no max-age in {cache_control!r}"
    return int(match.group(1))


def check_bucket(stack, public_id: str) -> None:
    """The live playlist and every segment it names are in the bucket with
    the right Content-Type and Cache-Control."""
    playlist_name = f"live/{public_id}/index.m3u8"
    playlist = object_metadata(stack, playlist_name)
    assert playlist["contentType"] == "application/vnd.apple.mpegurl"
    playlist_url = f"{stack.edge_url}/{playlist_name}"
    text = requests.get(playlist_url, timeout=5).text
    target, uris = playlist_entries(text)
    assert max_age(playlist.get("cacheControl")) <= target / 2
    assert uris, text
    for uri in uris:
        segment_url = urljoin(playlist_url, uri)
        assert segment_url.startswith(f"{stack.edge_url}/live/{public_id}/"), segment_url
        segment = object_metadata(stack, segment_url[len(stack.edge_url) + 1 :])
        assert segment["contentType"] == "video/mp2t"
        assert segment.get("cacheControl") == SEGMENT_CACHE
        assert int(segment["size"]) > 0


class SocketFrames:
    """Every websocket message a page receives (to prove none holds the key)."""

    def __init__(self, page: Page):
        self.frames: list[str] = []
        page.on("websocket", self._watch)

    def _watch(self, socket) -> None:
        socket.on("framereceived", lambda payload: self.frames.append(str(payload)))

    def statuses(self) -> list[str]:
        return [json.loads(f).get("status") for f in self.frames if '"status"' in f]


def test_rtmp_publish_plays_live_from_the_cdn_then_replays(
    studio_stack, ffmpeg_publisher, page: Page, context: BrowserContext
):
    """A creator goes live from an RTMP encoder: the studio page turns LIVE by
    itself, a viewer's page starts playing from the CDN by itself, the bucket
    holds exactly what the playlist names with the right headers, and after
    the encoder stops both pages say ended and the replay plays to its end.
    The secret key never reaches the viewer's page or socket."""
    base = studio_stack.base_url
    RegisterPage(page, base).open().register(f"live-{time.time_ns()}@example.com", PASSWORD)
    studio: StreamPage = StreamsPage(page).create("Live test")
    studio.set_reconnect_window(0)  # stopping ends the broadcast at once
    public_id = studio.public_id
    stream_key = studio.reveal_key()
    secret = stream_key.split("secret=", 1)[1]

    viewer = context.new_page()
    viewer_frames = SocketFrames(viewer)
    edge_requests: list[str] = []
    viewer.on("request", lambda request: edge_requests.append(request.url))
    watch = WatchPage(viewer).open(base, public_id)
    expect(watch.offline_card).to_be_visible()
    expect(watch.status).to_have_text("offline")
    assert secret not in viewer.content()
    assert secret not in requests.get(f"{base}/watch/{public_id}", timeout=5).text

    # As OBS would: the server field plus the key exactly as the page shows it.
    publisher = ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{stream_key}")
    try:
        # Pushed over the websocket: neither page reloads.
        expect(studio.status).to_have_text("LIVE", timeout=15_000)
        expect(studio.elapsed).to_have_text(re.compile(r"^\d{2}:\d{2}$"))
        # What nginx-rtmp's /stat says of the encoder: bitrate, codec, size, rate.
        # (nginx-rtmp may report the coded height of the 360-line picture, 352.)
        health = re.compile(r"[1-9][\d,]* kbit/s · H264 · 640×3\d\d · 30 fps · audio AAC")
        expect(studio.ingest_health).to_contain_text(health, timeout=15_000)
        expect(watch.status).to_have_text("LIVE", timeout=15_000)
        expect(watch.offline_card).to_be_hidden()

        watch.wait_until_playing(past_seconds=2.0, timeout_ms=45_000)
        assert watch.mode() == "live"
        assert watch.decoded_frames() > 0
        assert any(
            url.startswith(f"{studio_stack.edge_url}/live/{public_id}/") and url.endswith(".ts")
            for url in edge_requests
        ), "segments must come from the CDN edge"
        check_bucket(studio_stack, public_id)
    finally:
        stop_publisher(publisher)

    expect(studio.status).to_have_text("ended", timeout=15_000)
    expect(studio.elapsed).to_be_hidden()
    expect(watch.status).to_have_text("ended", timeout=15_000)
    expect(watch.ended_card).to_be_visible()

    # The replay: offered on the watch page once written, listed in the studio.
    expect(watch.latest_replay).to_be_visible(timeout=30_000)
    expect(watch.replays.get_by_role("button", name="Watch replay")).to_have_count(1)
    expect(studio.replay_links()).to_have_count(1, timeout=30_000)
    watch.record_ended()
    watch.latest_replay.click()
    watch.wait_until_playing(past_seconds=1.0)
    assert watch.mode() == "replay"
    watch.wait_until_ended(timeout_ms=90_000)

    assert "live" in viewer_frames.statuses() and "ended" in viewer_frames.statuses()
    assert not any(secret in frame for frame in viewer_frames.frames)


def test_viewer_waiting_across_two_broadcasts_plays_the_second_live(
    studio_stack, ffmpeg_publisher, page: Page
):
    """A viewer who keeps the watch page open after a broadcast ends plays the
    next broadcast live when it starts, not the previous one's recording
    (which the edge still serves as the stream's playlist for a few seconds)."""
    from tests.polling import wait_until

    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Twice")
    segments: list[str] = []
    page.on("request", lambda r: segments.append(r.url) if r.url.endswith(".ts") else None)
    watch = WatchPage(page).open(studio_stack.base_url, stream.public_id)

    first = ffmpeg_publisher.start(stream.publish_url)
    expect(watch.status).to_have_text("LIVE", timeout=15_000)
    watch.wait_until_playing(past_seconds=2.0, timeout_ms=45_000)
    stop_publisher(first)
    expect(watch.status).to_have_text("ended", timeout=15_000)
    playlist = f"live/{stream.public_id}/index.m3u8"
    wait_until(
        lambda: b"#EXT-X-ENDLIST" in studio_stack.edge_get(playlist)[2],
        timeout=30,
        what="the first broadcast's playlist to end",
    )
    first_id = studio_stack.stream_row(stream.public_id)["broadcasts"][0]["id"]

    second = ffmpeg_publisher.start(stream.publish_url)
    try:
        expect(watch.status).to_have_text("LIVE", timeout=15_000)
        second_id = studio_stack.stream_row(stream.public_id)["broadcasts"][-1]["id"]
        assert second_id != first_id
        watch.wait_until_playing(past_seconds=4.0, timeout_ms=45_000)
        assert any(f"/live/{stream.public_id}/{second_id}/" in url for url in segments), segments
        assert watch.mode() == "live"
        expect(page.locator("#player")).to_have_attribute("data-playlist", "live")
    finally:
        stop_publisher(second)
