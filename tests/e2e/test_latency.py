"""The watch page tells viewers how far behind live they are, from the
playlist's program date-times (real nginx-rtmp, ffmpeg, workers, bucket,
CDN edge and Chromium), and takes them back to live when far behind."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import RegisterPage, StreamsPage, WatchPage
from tests.e2e.test_live_playback import PASSWORD, stop_publisher

pytestmark = pytest.mark.e2e

FRAGMENT = 2.0  # ffmpeg's keyframe interval (-g 60 at 30 fps): nginx-rtmp's fragments


def _behind(page: Page) -> float:
    return float(page.get_by_test_id("live-latency").get_attribute("data-seconds"))


def test_viewer_sees_how_far_behind_live_and_can_go_back_to_live(
    studio_stack, ffmpeg_publisher, page: Page
):
    """While a live broadcast plays, "N s behind live" appears with a figure
    no smaller than one fragment (a frame is served only once its segment is
    closed) and far from absurd; a viewer who paused falls behind, is offered
    "Go to live", and is taken back near the live edge."""
    RegisterPage(page, studio_stack.base_url).open().register(
        f"latency-{time.time_ns()}@example.com", PASSWORD
    )
    studio = StreamsPage(page).create("Latency")
    publisher = ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{studio.reveal_key()}")
    try:
        watch = WatchPage(page).open(studio_stack.base_url, studio.public_id)
        watch.wait_until_playing(past_seconds=2.0, timeout_ms=60_000)
        indicator = page.get_by_test_id("live-latency")
        expect(indicator).to_have_text(re.compile(r"^\d+ s behind live$"), timeout=15_000)
        behind = _behind(page)
        assert FRAGMENT * 0.5 <= behind < 120, f"{behind} s behind live"
        expect(page.get_by_test_id("go-live")).to_be_hidden()

        watch.video.evaluate("video => video.pause()")
        go_live = page.get_by_test_id("go-live")
        expect(go_live).to_be_visible(timeout=60_000)
        paused_behind = _behind(page)
        assert paused_behind > behind

        go_live.click()
        expect(go_live).to_be_hidden(timeout=15_000)
        watch.wait_until_playing(past_seconds=1.0)
        assert _behind(page) < paused_behind
    finally:
        stop_publisher(publisher)
