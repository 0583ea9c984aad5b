"""Control while live on the go-live page (WebSocket ingest into a real
nginx-rtmp): mute and camera-off act at once, the microphone meter follows
the sound, and switching to a screen share keeps the same broadcast and the
same recording while viewers keep watching."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from tests.e2e.golive.harness import ffmpeg_pids
from tests.e2e.golive.pages import open_go_live
from tests.e2e.pages import WatchPage
from tests.polling import wait_until

SENT_AUDIO = "() => document.getElementById('preview').srcObject.getAudioTracks()[0].enabled"
LEVEL = "document.getElementById('mic-level').value"


def test_mute_and_camera_off_act_on_what_is_sent(studio_stack, context: BrowserContext):
    """The meter moves with the (fake) microphone; Mute silences what is sent
    and the meter, and says so on the button; the camera toggle likewise."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Controls")
    golive = open_go_live(context, studio_stack.base_url, email, stream.public_id)
    page = golive.page
    mute = page.get_by_role("button", name="Mute microphone")
    camera = page.get_by_role("button", name="Turn camera off")
    expect(page.get_by_label("Microphone level")).to_be_visible()
    page.wait_for_function(f"() => {LEVEL} > 0")

    mute.click()
    unmute = page.get_by_role("button", name="Unmute microphone")
    expect(unmute).to_have_attribute("aria-pressed", "true")
    assert page.evaluate(SENT_AUDIO) is False
    page.wait_for_function(f"() => {LEVEL} === 0")
    unmute.click()
    expect(mute).to_have_attribute("aria-pressed", "false")
    assert page.evaluate(SENT_AUDIO) is True

    camera.click()
    expect(page.get_by_role("button", name="Turn camera on")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert (
        page.evaluate(
            "() => document.getElementById('preview').srcObject.getVideoTracks()[0].enabled"
        )
        is False
    )


def test_switching_to_the_screen_while_live_keeps_the_broadcast(
    studio_stack, context: BrowserContext
):
    """Live over the WebSocket, the creator switches to a screen share: the
    page stays live, no new publish reaches the media server (one broadcast,
    the same relay), and a viewer's player goes on playing."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Switch source")
    golive = open_go_live(context, studio_stack.base_url, email, stream.public_id)
    golive.go_live_button.click()
    expect(golive.path).to_have_attribute("data-path", "websocket")
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    relay = wait_until(lambda: ffmpeg_pids(stream.public_id), 10, "the relay's ffmpeg")

    viewer = context.new_page()
    watch = WatchPage(viewer).open(studio_stack.base_url, stream.public_id)
    watch.wait_until_playing(2, timeout_ms=60_000)

    golive.page.get_by_role("radio", name="Screen share").check()
    expect(golive.message).to_have_text("Now sharing your screen, still live.")
    expect(golive.status).to_have_text("LIVE")
    watch.wait_until_playing(4, timeout_ms=60_000)
    assert ffmpeg_pids(stream.public_id) == relay
    assert len(studio_stack.stream_row(stream.public_id)["broadcasts"]) == 1

    golive.stop()
    expect(golive.status).to_have_text("ended", timeout=20_000)
