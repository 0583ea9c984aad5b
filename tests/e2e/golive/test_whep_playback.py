"""Watching over WebRTC (WHEP) in Chromium, against SrsWhipDouble playing
SRS 5's WHEP role (SRS cannot run here): H.264 + Opus from a file.

A studio configured for SRS (pages and sockets, nginx in front, WHEP at the
double) shares the e2e stack's database, Redis and CDN edge. The stream goes
live the stack's way (ffmpeg over RTMP into nginx-rtmp; the watcher and RQ
workers put its HLS behind the edge), so the HLS the page falls back to is
real. On the stack itself (nginx-rtmp) no WebRTC is offered.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.conftest import VAR
from tests.e2e.golive.harness import camera_recording, run_studio
from tests.e2e.golive.whip_double import SrsWhipDouble
from tests.e2e.pages import WatchPage
from tests.polling import wait_until

WHEP_TIMEOUT = 4  # seconds without a picture before the page falls back
MAX_VIEWERS = 1  # per stream: a second viewer starts in HLS
# The timeout, candidate gathering (2 s at most) and the first HLS segments.
FALLBACK_MS = (WHEP_TIMEOUT + 2 + 4) * 1000
WEBRTC = "Low latency (WebRTC)"


@pytest.fixture(scope="module")
def double():
    var = VAR / "whep-playback"
    var.mkdir(parents=True, exist_ok=True)
    media = var / "clip.mkv"
    if not media.exists():
        camera_recording(media, seconds=120)
    with SrsWhipDouble(media=str(media)) as running:
        yield running


@pytest.fixture(scope="module")
def srs_studio(studio_stack, double):
    env = {
        "STUDIO_MEDIA_ENGINE": "srs",
        "STUDIO_SRS_API_URL": "http://127.0.0.1:9",  # no SRS API here
        "STUDIO_WHEP_URL": double.whep_url,
        "STUDIO_WHEP_TIMEOUT": str(WHEP_TIMEOUT),
        "STUDIO_WHEP_MAX_VIEWERS": str(MAX_VIEWERS),
        "STUDIO_CDN_URL": studio_stack.edge_url,
        "STUDIO_HLS_FRAGMENT": studio_stack.env.get("STUDIO_HLS_FRAGMENT", "2"),
    }
    services = {"database_url": studio_stack.database_url, "redis_url": studio_stack.redis_url}
    token = studio_stack.hook_token
    with run_studio(VAR / "whep-playback", services, token, env) as running:
        double.hook_url = f"{running.url}/hooks/srs?token={token}"
        yield running


@pytest.fixture()
def whep_mode(double):
    def set_mode(mode: str) -> None:
        double.whep_mode = mode

    yield set_mode
    double.whep_mode = "ok"


@pytest.fixture()
def visitor(browser: Browser):
    """A browser of someone not logged in."""
    context = browser.new_context()
    yield context
    context.close()


@pytest.fixture()
def live_stream(studio_stack, ffmpeg_publisher):
    """A stream publishing over RTMP (HLS to the CDN edge) for the test."""
    stream = studio_stack.create_stream(studio_stack.create_user(), title="WHEP show")
    ffmpeg_publisher.start(stream.publish_url)
    wait_until(
        lambda: studio_stack.stream_row(stream.public_id)["status"] == "live", 20, "stream live"
    )
    return stream


def test_viewer_plays_over_webrtc_and_counts(
    srs_studio, double, live_stream, visitor: BrowserContext
):
    """On SRS, a viewer under the cap starts in WebRTC: the label says so,
    H.264 frames from the WHEP answer play, the viewer counts; switching to
    HLS ends the WHEP session (DELETE) and plays from the CDN."""
    watch = WatchPage(visitor.new_page()).open(srs_studio.url, live_stream.public_id)
    expect(watch.playback_mode).to_have_text(WEBRTC, timeout=20_000)
    assert watch.source() == "webrtc"
    watch.wait_until_playing(past_seconds=1.0)
    session = double.players[-1]
    assert session.stream == live_stream.public_id
    assert "H264" in session.answer and "opus" in session.answer
    assert [h["action"] for h in double.hook_replies if h.get("code") == 0][-1] == "on_play"
    expect(watch.viewers).to_have_text("1 watching")

    watch.playback_switch.click()
    expect(watch.playback_mode).to_have_text("HLS")
    wait_until(lambda: session.token in double.deletes, 10, "DELETE of the WHEP session")
    watch.wait_until_playing(past_seconds=1.0, timeout_ms=30_000)
    assert watch.source() == "hls"
    expect(watch.playback_switch).to_have_text("Switch to low latency")


@pytest.mark.parametrize("mode", ["error", "silent", "unreachable"])
def test_failed_webrtc_falls_back_to_hls(
    srs_studio, double, whep_mode, live_stream, visitor: BrowserContext, mode
):
    """When WHEP answers HTTP 500, answers and connects but never sends a
    frame, or answers but ICE cannot connect, the page plays HLS within a few
    seconds and says why; a half-made session is ended (DELETE)."""
    whep_mode(mode)
    watch = WatchPage(visitor.new_page()).open(srs_studio.url, live_stream.public_id)
    expect(watch.playback_mode).to_have_text("HLS", timeout=FALLBACK_MS)
    expect(watch.playback_note).to_contain_text("Low latency unavailable")
    reasons = {
        "error": "the media server answered HTTP 500",
        "silent": f"no picture arrived within {WHEP_TIMEOUT} s",
        "unreachable": "WebRTC could not connect",
    }
    expect(watch.playback_note).to_contain_text(reasons[mode])
    watch.wait_until_playing(past_seconds=1.0, timeout_ms=30_000)
    assert watch.source() == "hls"
    if mode != "error":
        session = double.players[-1]
        assert session.stream == live_stream.public_id
        wait_until(lambda: session.token in double.deletes, 10, "DELETE of the failed session")


def test_lost_webrtc_mid_play_falls_back_to_hls(
    srs_studio, double, live_stream, visitor: BrowserContext
):
    """When the media server drops a playing WebRTC session, the page goes on in HLS."""
    watch = WatchPage(visitor.new_page()).open(srs_studio.url, live_stream.public_id)
    expect(watch.playback_mode).to_have_text(WEBRTC, timeout=20_000)
    watch.wait_until_playing(past_seconds=1.0)
    double.kick(double.players[-1])
    expect(watch.playback_mode).to_have_text("HLS", timeout=FALLBACK_MS + 5000)
    expect(watch.playback_note).to_contain_text("Low latency unavailable")
    watch.wait_until_playing(past_seconds=1.0, timeout_ms=30_000)
    assert watch.source() == "hls"


def test_over_the_cap_a_viewer_starts_in_hls(
    srs_studio, double, live_stream, visitor: BrowserContext, browser: Browser
):
    """With as many viewers as the cap, the next viewer starts in HLS (no WHEP
    session) and cannot switch to WebRTC until someone leaves."""
    first = WatchPage(visitor.new_page()).open(srs_studio.url, live_stream.public_id)
    expect(first.playback_mode).to_have_text(WEBRTC, timeout=20_000)
    expect(first.viewers).to_have_text("1 watching")
    sessions = len(double.players)

    other = browser.new_context()
    try:
        second = WatchPage(other.new_page()).open(srs_studio.url, live_stream.public_id)
        expect(second.playback_mode).to_have_text("HLS")
        expect(second.playback_note).to_contain_text("Low latency is full")
        expect(second.playback_switch).to_be_disabled()
        second.wait_until_playing(past_seconds=1.0, timeout_ms=30_000)
        assert second.source() == "hls"
        assert len(double.players) == sessions  # the second viewer never asked for WebRTC

        first.page.close()
        try:
            expect(second.viewers).to_have_text("1 watching", timeout=20_000)
        except AssertionError:
            print(srs_studio.log_text()[-20_000:])  # what the sockets tier saw
            raise
        expect(second.playback_switch).to_be_enabled()
        second.playback_switch.click()
        expect(second.playback_mode).to_have_text(WEBRTC, timeout=20_000)
        assert second.source() == "webrtc"
    finally:
        other.close()


def test_on_nginx_rtmp_no_webrtc_is_offered(studio_stack, live_stream, visitor: BrowserContext):
    """The stack's engine (nginx-rtmp) plays HLS only: no mode label, no
    WHEP URL on the page, and the page plays from the CDN."""
    watch = WatchPage(visitor.new_page()).open(studio_stack.base_url, live_stream.public_id)
    watch.wait_until_playing(past_seconds=1.0, timeout_ms=45_000)
    assert watch.source() == "hls"
    expect(watch.playback_mode).to_have_count(0)
    assert watch.page.locator("#player").get_attribute("data-whep-url") is None
