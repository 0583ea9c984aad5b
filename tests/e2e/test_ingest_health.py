"""The creator's view of an encoder (real nginx-rtmp, ffmpeg, Chromium): the
bitrate shown from the first health report of a healthy broadcast is
measured, never the engine's slow average that reads 0 for 10-15 s."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import RegisterPage, StreamPage, StreamsPage

pytestmark = pytest.mark.e2e


def test_a_healthy_broadcast_never_shows_zero_kbps(studio_stack, ffmpeg_publisher, page: Page):
    """While the encoder publishes, each health report gives no bitrate yet
    ("measuring") or a real one; the page shows a rate above zero."""
    health: list[dict] = []

    def watch(socket) -> None:
        def frame(payload) -> None:
            event = json.loads(str(payload))
            if event.get("type") == "health":
                health.append(event)

        socket.on("framereceived", frame)

    page.on("websocket", watch)
    RegisterPage(page, studio_stack.base_url).open().register(
        f"health-{time.time_ns()}@example.com", "a long enough password"
    )
    studio: StreamPage = StreamsPage(page).create("Health")
    key = studio.reveal_key()
    ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{key}")
    expect(studio.status).to_have_text("LIVE", timeout=15_000)
    expect(studio.ingest_health).to_contain_text("H264", timeout=20_000)
    expect(studio.ingest_health).to_contain_text(" kbit/s", timeout=20_000)
    publishing = [event for event in health if event.get("publishing")]
    assert publishing, health
    assert all(event["kbps"] is None or event["kbps"] > 0 for event in publishing), publishing
    assert any(event["kbps"] for event in publishing), publishing
    assert " 0 kbit/s" not in studio.ingest_health.inner_text()
