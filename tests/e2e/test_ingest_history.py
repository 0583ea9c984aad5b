"""Ingest health with history on the stream page, from a real nginx-rtmp:
the reconciler's samples draw the bitrate, and an encoder whose keyframes
are 6 s apart (at 2 s fragments) gets a warning that says what to change."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.e2e.golive.pages import log_in
from tests.polling import wait_until
from workers import reconcile as reconciler


def _sample(studio_stack) -> None:
    with studio_stack.app.app_context():
        reconciler.reconcile(now=time.time())


def test_stream_page_charts_ingest_and_warns_about_long_keyframe_intervals(
    studio_stack, ffmpeg_publisher, page: Page
):
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Long GOP")
    ffmpeg_publisher.start(stream.publish_url, keyframe_seconds=6)
    wait_until(lambda: studio_stack.stream_row(stream.public_id)["status"] == "live", 15, "live")
    _sample(studio_stack)

    log_in(page, studio_stack.base_url, email)
    page.goto(f"{studio_stack.base_url}/streams/{stream.public_id}")
    history = page.get_by_test_id("ingest-history")
    expect(history).to_be_visible()
    expect(history.get_by_role("img", name="Bitrate over the last 10 minutes")).to_be_visible()

    def three_segments() -> bool:
        broadcasts = studio_stack.stream_row(stream.public_id)["broadcasts"]
        return len(broadcasts[-1]["segments"]) >= 3

    wait_until(three_segments, 45, "three segments in the bucket")
    _sample(studio_stack)
    page.reload()
    expect(history.get_by_test_id("chart-kbps").locator("[data-latest]")).to_have_text(
        re.compile(r"^[\d,]+ kbit/s$")
    )
    expect(history.get_by_test_id("ingest-warnings")).to_contain_text(
        "Set the encoder's keyframe interval to 2 s"
    )
    expect(history.get_by_test_id("chart-keyframes").locator("[data-latest]")).to_have_text("6.0 s")
