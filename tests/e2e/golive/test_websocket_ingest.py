"""Going live from Chromium's fake camera over the WebSocket ingest, through
nginx-rtmp, the upload pipeline and the CDN edge, to a viewer's hls.js."""

from __future__ import annotations

import os
import re
import signal

from playwright.sync_api import BrowserContext, expect

from tests.e2e.golive.harness import ffmpeg_pids
from tests.e2e.golive.pages import GoLivePage, log_in, open_go_live
from tests.polling import wait_until


def test_camera_goes_live_over_websocket_and_viewers_watch_it(
    studio_stack, context: BrowserContext
):
    """With nginx-rtmp (no WebRTC), the page sends over the WebSocket and
    says so; the stream page turns LIVE, the watch page plays the stream
    from the CDN edge, and Stop ends the broadcast with no ffmpeg left."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Webcam show")
    creator = context.new_page()
    log_in(creator, base, email)

    creator.goto(f"{base}/streams/{stream.public_id}")
    creator.get_by_test_id("open-golive").click()
    golive = GoLivePage(creator, base, stream.public_id)
    creator.wait_for_url(golive.url)
    golive.preview_playing()
    golive.go_live_button.click()
    expect(golive.path).to_have_attribute("data-path", "websocket", timeout=15_000)
    expect(golive.path).to_contain_text("WebSocket")
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    expect(golive.elapsed).to_have_text(re.compile(r"^\d\d:\d\d$"))
    expect(golive.health("sent")).not_to_have_text("–", timeout=10_000)
    assert len(ffmpeg_pids(stream.public_id)) == 1

    stream_page = context.new_page()
    stream_page.goto(f"{base}/streams/{stream.public_id}")
    expect(stream_page.get_by_test_id("stream-status")).to_have_text("LIVE")

    viewer = context.new_page()
    viewer.goto(f"{base}/watch/{stream.public_id}")
    # hls.js from the CDN edge: playback time moves forward.
    viewer.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=video]');"
        " return v && v.currentTime > 2; }",
        timeout=60_000,
    )
    assert studio_stack.stream_row(stream.public_id)["broadcasts"][0]["ended_at"] is None

    golive.stop()
    expect(golive.path).to_have_text("Not live.")
    expect(stream_page.get_by_test_id("stream-status")).to_have_text("ended", timeout=20_000)
    wait_until(lambda: not ffmpeg_pids(stream.public_id), 10, "the relay's ffmpeg to exit")
    assert studio_stack.stream_row(stream.public_id)["status"] == "ended"
    # Logged once the socket tier has reaped the relay, a moment after it exits.
    ended = "websocket ingest ended stream=" + stream.public_id
    wait_until(lambda: ended in studio_stack.log_text("sockets"), 10, "the relay's end logged")


def test_lost_relay_reconnects_by_itself(studio_stack, context: BrowserContext):
    """When the connection to the media server breaks mid-broadcast (the
    relay's ffmpeg dies), the page says it is reconnecting, opens a new
    ingest and the stream is live again without the creator doing anything."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Flaky uplink")
    golive = open_go_live(context, base, email, stream.public_id)
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    (first,) = ffmpeg_pids(stream.public_id)

    os.kill(first, signal.SIGKILL)
    expect(golive.message).to_contain_text("Reconnecting", timeout=10_000)
    expect(golive.message).to_have_text("Reconnected.", timeout=20_000)
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    wait_until(lambda: ffmpeg_pids(stream.public_id) not in ([], [first]), 10, "a new relay")
    assert len(studio_stack.stream_row(stream.public_id)["broadcasts"]) == 2

    golive.stop()
    expect(golive.status).to_have_text("ended", timeout=20_000)
    wait_until(lambda: not ffmpeg_pids(stream.public_id), 10, "the relay's ffmpeg to exit")


def test_screen_share_with_microphone_goes_live(studio_stack, context: BrowserContext):
    """Screen share with the microphone mixed in: the media server receives
    video and audio from it."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Slides")
    golive = open_go_live(context, base, email, stream.public_id)
    page = golive.page
    page.get_by_role("radio", name="Screen share").check()
    expect(page.get_by_label("Add the microphone to a screen share")).to_be_checked()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=preview]').srcObject"
        "?.getVideoTracks()[0]?.label.startsWith('screen')"
    )
    assert (
        page.evaluate(
            "document.querySelector('[data-testid=preview]').srcObject.getAudioTracks().length"
        )
        == 1
    )
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    # What nginx-rtmp reports of the publisher (the status socket's health events).
    expect(golive.health("server")).to_contain_text("audio", timeout=20_000)
    golive.stop()
    expect(golive.status).to_have_text("ended", timeout=20_000)
