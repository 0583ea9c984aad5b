"""What people see of the reconnect window and of the confirmations, in
Chromium: a viewer's player rides out a dropped encoder without a reload,
and a live broadcast is not cut by one click."""

from __future__ import annotations

import signal

from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.pages import LoginPage, StreamPage, WatchPage
from tests.polling import wait_until


def test_a_viewer_sees_reconnecting_and_then_the_stream_again(
    studio_stack, ffmpeg_publisher, page: Page
):
    """The encoder drops: the watch page says "Reconnecting…" over the
    player it keeps, without a "behind live" figure that would only grow;
    the encoder returns: the same page (no reload) plays the same broadcast
    on, the figure back. The audience count stays through it all, and the
    longer badge moves nothing down, whatever the title's length."""
    stream = studio_stack.create_stream(
        studio_stack.create_user(), "Wobbly Wi-Fi", reconnect_window=120
    )
    first = ffmpeg_publisher.start(stream.publish_url)
    watch = WatchPage(page).open(studio_stack.base_url, stream.public_id)
    expect(watch.status).to_have_text("LIVE", timeout=20_000)
    watch.wait_until_playing(past_seconds=2.0, timeout_ms=45_000)
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    playing = page.locator("#player").get_attribute("data-playing-broadcast")
    overlay = page.get_by_test_id("reconnecting")
    latency = page.get_by_test_id("live-latency")
    expect(latency).to_be_visible(timeout=20_000)
    expect(watch.viewers).to_be_visible()
    tops_while_live = _player_tops(page)

    first.send_signal(signal.SIGINT)
    first.wait(timeout=15)
    expect(watch.status).to_have_text("Reconnecting…")
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("Reconnecting…")
    expect(watch.video).to_be_visible()  # the player stays
    expect(latency).to_be_hidden()
    expect(watch.viewers).to_be_visible()
    expect(watch.ended_card).to_be_hidden()
    assert watch.mode() == "live"
    assert _player_tops(page) == tops_while_live

    ffmpeg_publisher.start(stream.publish_url)
    expect(watch.status).to_have_text("LIVE", timeout=20_000)
    expect(overlay).to_be_hidden()
    watch.wait_until_playing(past_seconds=3.0, timeout_ms=60_000)
    expect(latency).to_be_visible()
    assert page.evaluate("window.sameDocument") is True
    assert page.locator("#player").get_attribute("data-playing-broadcast") == playing
    assert len(studio_stack.stream_row(stream.public_id)["broadcasts"]) == 1


def _player_tops(page: Page) -> list[float]:
    """Where the player starts with titles of 5 to 120 characters (the page's
    own title is put back)."""
    return page.evaluate(
        """() => {
            const title = document.querySelector("h1"), own = title.textContent, tops = [];
            for (let length = 5; length <= 120; length += 1) {
                title.textContent = "Sourdough ".repeat(12).slice(0, length);
                tops.push(document.getElementById("player").getBoundingClientRect().top);
            }
            title.textContent = own;
            return tops;
        }"""
    )


def test_rotating_the_key_while_live_asks_first(studio_stack, ffmpeg_publisher, page: Page):
    """Rotate key while live opens a dialog naming the consequence; Cancel
    keeps the broadcast and the key; confirming ends the broadcast."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Careful", reconnect_window=120)
    publisher = ffmpeg_publisher.start(stream.publish_url)
    LoginPage(page, studio_stack.base_url).open().log_in(email, PASSWORD)
    studio = StreamPage(page).open(studio_stack.base_url, stream.public_id)
    expect(studio.status).to_have_text("LIVE", timeout=20_000)

    page.get_by_test_id("rotate-key").click()
    dialog = page.get_by_role("dialog", name="Rotate the stream key?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Rotating the key ends the live broadcast now.")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(studio.status).to_have_text("LIVE")
    row = studio_stack.stream_row(stream.public_id)
    assert row["status"] == "live" and row["broadcasts"][0]["ended_at"] is None
    assert publisher.poll() is None

    page.get_by_test_id("rotate-key").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # Escape cancels too
    expect(dialog).to_be_hidden()
    assert studio_stack.stream_row(stream.public_id)["status"] == "live"

    page.get_by_test_id("rotate-key").click()
    dialog.get_by_role("button", name="Rotate key and end broadcast").click()
    expect(page.get_by_role("status").filter(has_text="New stream key issued")).to_be_visible()
    ended = studio_stack.stream_row(stream.public_id)
    assert ended["status"] == "ended"
    assert ended["broadcasts"][0]["end_reason"] == "key_rotated"
    wait_until(lambda: publisher.poll() is not None, 15, "the publisher dropped")


def test_disabling_while_live_asks_first_and_cancel_changes_nothing(
    studio_stack, ffmpeg_publisher, page: Page
):
    """Disable while live asks first; Cancel leaves the stream enabled and live."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Still on")
    ffmpeg_publisher.start(stream.publish_url)
    LoginPage(page, studio_stack.base_url).open().log_in(email, PASSWORD)
    studio = StreamPage(page).open(studio_stack.base_url, stream.public_id)
    expect(studio.status).to_have_text("LIVE", timeout=20_000)
    page.get_by_test_id("disable-stream").click()
    dialog = page.get_by_role("dialog", name="Disable the stream?")
    expect(dialog).to_contain_text("Disabling the stream ends the live broadcast now")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    row = studio_stack.stream_row(stream.public_id)
    assert (row["status"], row["disabled"]) == ("live", False)


def test_the_replay_of_a_reconnected_broadcast_plays_through(
    studio_stack, ffmpeg_publisher, page: Page
):
    """Two publishes of 6 s within the window, then the creator ends the
    broadcast: its one replay plays from start to end across the cut."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Two halves", reconnect_window=120)
    ffmpeg_publisher.start(stream.publish_url, seconds=6).wait(timeout=60)
    wait_until(
        lambda: studio_stack.stream_row(stream.public_id)["status"] == "reconnecting",
        20,
        "reconnecting",
    )
    ffmpeg_publisher.start(stream.publish_url, seconds=6).wait(timeout=60)
    wait_until(
        lambda: studio_stack.stream_row(stream.public_id)["status"] == "reconnecting",
        20,
        "reconnecting again",
    )
    LoginPage(page, studio_stack.base_url).open().log_in(email, PASSWORD)
    studio = StreamPage(page).open(studio_stack.base_url, stream.public_id)
    expect(studio.status).to_have_text("Reconnecting…")
    page.get_by_test_id("end-broadcast").click()
    page.get_by_role("dialog", name="End the broadcast?").get_by_role(
        "button", name="End broadcast"
    ).click()
    expect(studio.status).to_have_text("ended")
    row = wait_until(
        lambda: (
            (r := studio_stack.stream_row(stream.public_id))["broadcasts"][0]["replay_ready_at"]
            and r
        ),
        60,
        "the replay",
    )
    (broadcast,) = row["broadcasts"]
    page.goto(f"{studio_stack.base_url}/watch/{stream.public_id}/replays/{broadcast['id']}")
    watch = WatchPage(page)
    watch.record_ended()
    watch.wait_until_playing(past_seconds=1.0, timeout_ms=45_000)
    watch.wait_until_ended(timeout_ms=60_000)
    assert watch.video.evaluate("video => video.currentTime") > 9
