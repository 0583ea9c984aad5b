"""What viewers get beyond plain HLS, each where the deployment offers it:
live chat between two viewers, WebRTC (WHEP) playback, and a private
stream's video refused at the CDN without a signed cookie."""

from __future__ import annotations

import requests
from playwright.sync_api import Browser, expect

from tests.e2e.pages import ChatPanel, WatchPage
from tests.e2e.qa.checks import wait_for_playback, wait_for_status
from tests.e2e.qa.target import publish_url, require_offered, seconds


def _offers(creator, path: str) -> bool:
    """Whether the target's API documents `path` (a feature it has)."""
    document = creator.api.get(f"{creator.target.api_url}/openapi.json", timeout=seconds(15))
    return path in document.json()["paths"]


def test_two_viewers_chat_and_markup_stays_text(creator, rtmp_publisher, browser: Browser):
    """Two anonymous viewers of a live stream see each other's messages;
    markup in a message is shown as typed, never made into elements."""
    require_offered(_offers(creator, "/streams/{stream_id}/chat"), "live chat")
    stream = creator.create_stream("chat")
    rtmp_publisher(publish_url(stream))
    wait_for_status(creator, stream["id"], "live", within=20)
    panels = []
    for _ in range(2):
        page = browser.new_context().new_page()
        WatchPage(page).open(creator.target.base_url, stream["id"])
        panels.append(ChatPanel(page).wait_until_ready())
    ada, bob = panels
    ada.write("Hello <b>there</b> from QA", name="QA Ada")
    expect(bob.message("Hello")).to_contain_text("Hello <b>there</b> from QA")
    assert bob.message("Hello").locator("b").count() == 0
    bob.write("Hi Ada", name="QA Bob")
    expect(ada.message("Hi Ada")).to_be_visible()
    for panel in panels:
        panel.page.context.close()


def test_webrtc_playback_where_offered(creator, rtmp_publisher, browser: Browser):
    """Where the engine plays WebRTC (WHEP), a viewer starts in it, the page
    says so, and the video plays."""
    stream = creator.create_stream("WHEP")
    require_offered("webrtc" in stream["playback"]["modes"], "WebRTC (WHEP) playback")
    rtmp_publisher(publish_url(stream))
    wait_for_status(creator, stream["id"], "live", within=20)
    page = browser.new_context().new_page()
    WatchPage(page).open(creator.target.base_url, stream["id"])
    expect(page.get_by_test_id("playback-mode")).to_contain_text("Low latency (WebRTC)")
    wait_for_playback(page, 2, within=30, what="WebRTC playback")
    page.context.close()


def test_private_video_is_refused_without_a_signature(creator, rtmp_publisher):
    """A private stream's live playlist is refused by the CDN to a request
    without the signed cookie the watch page gives allowed viewers."""
    require_offered(_offers_visibility(creator), "private streams")
    stream = creator.create_stream("private")
    stream = creator.call("PATCH", f"/streams/{stream['id']}", json={"visibility": "private"})
    assert stream["visibility"] == "private"
    rtmp_publisher(publish_url(stream))
    wait_for_status(creator, stream["id"], "live", within=20)
    reply = requests.get(
        stream["playback"]["hls_url"], timeout=seconds(15), verify=creator.target.verify_tls
    )
    assert reply.status_code in (401, 403), (
        f"the CDN served a private stream's playlist without a signature ({reply.status_code})"
    )
    anonymous = requests.get(
        f"{creator.target.base_url}/watch/{stream['id']}",
        timeout=seconds(15),
        verify=creator.target.verify_tls,
    )
    assert anonymous.status_code == 404


def _offers_visibility(creator) -> bool:
    document = creator.api.get(f"{creator.target.api_url}/openapi.json", timeout=seconds(15))
    schema = document.json()["components"]["schemas"].get("StreamUpdate", {})
    return "visibility" in schema.get("properties", {})
