"""The go-live page with a reconnect window: a relay that breaks is continued
as the same broadcast, Stop asks first, and leaving while live is warned."""

from __future__ import annotations

import os
import signal

from playwright.sync_api import BrowserContext, expect

from tests.e2e.golive.harness import ffmpeg_pids
from tests.e2e.golive.pages import open_go_live
from tests.polling import wait_until


def test_a_broken_relay_continues_the_same_broadcast(studio_stack, context: BrowserContext):
    """Over the WebSocket ingest, with a window: the relay dies, the page
    reconnects by itself and the studio continues the same broadcast."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Same show", reconnect_window=120)
    golive = open_go_live(context, base, email, stream.public_id)
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    (first,) = ffmpeg_pids(stream.public_id)

    os.kill(first, signal.SIGKILL)
    expect(golive.message).to_have_text("Reconnected.", timeout=30_000)
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    row = studio_stack.stream_row(stream.public_id)
    assert len(row["broadcasts"]) == 1 and row["broadcasts"][0]["ended_at"] is None

    golive.stop()
    expect(golive.status).to_have_text("ended", timeout=20_000)
    ended = studio_stack.stream_row(stream.public_id)
    assert ended["broadcasts"][0]["end_reason"] == "stopped"  # no waiting after Stop
    wait_until(lambda: not ffmpeg_pids(stream.public_id), 10, "the relay's ffmpeg to exit")


def test_stop_and_leaving_ask_first_while_live(studio_stack, context: BrowserContext):
    """Stop while live opens a dialog; Cancel keeps sending. Closing the
    page while live brings the browser's leave prompt; staying keeps it live."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Do not cut", reconnect_window=120)
    golive = open_go_live(context, base, email, stream.public_id)
    page = golive.page
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=20_000)

    golive.stop_button.click()
    dialog = page.get_by_role("dialog", name="Stop the broadcast?")
    expect(dialog).to_contain_text("Stopping ends the live broadcast now")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(golive.stop_button).to_be_visible()
    assert studio_stack.stream_row(stream.public_id)["status"] == "live"
    assert len(ffmpeg_pids(stream.public_id)) == 1

    with page.expect_event("dialog") as leaving:
        page.close(run_before_unload=True)
    prompt = leaving.value
    assert prompt.type == "beforeunload"
    prompt.dismiss()  # stay on the page
    assert not page.is_closed()
    expect(golive.status).to_have_text("LIVE")
    assert len(ffmpeg_pids(stream.public_id)) == 1
    golive.stop()
    expect(golive.status).to_have_text("ended", timeout=20_000)
