"""The browser's path: a creator goes live from the go-live page with
Chromium's fake camera, over WebRTC (WHIP) where the deployment offers it,
else over the WebSocket ingest; Stop ends the broadcast at once."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from tests.e2e.golive.pages import GoLivePage
from tests.e2e.golive.whip_double import first_video_codec
from tests.e2e.pages import LoginPage
from tests.e2e.qa.checks import wait_for_status
from tests.e2e.qa.target import require_offered, seconds


def test_creator_goes_live_from_the_browser_and_stops(qa_target, creator, context: BrowserContext):
    """Go live from the camera (every engine takes it: WebRTC where offered,
    else the WebSocket ingest): the stream turns live, and Stop ends it."""
    stream = creator.create_stream("browser go-live")
    protocols = stream["ingest"]["protocols"]
    page = context.new_page()
    LoginPage(page, qa_target.base_url).open().log_in(qa_target.email, qa_target.password)
    page.wait_for_url(lambda url: not url.endswith("/login"), timeout=seconds(15) * 1000)
    golive = GoLivePage(page, qa_target.base_url, stream["id"]).open()
    golive.preview_playing()
    golive.go_live_button.click()
    expected_path = "webrtc" if "webrtc" in protocols else "websocket"
    expect(golive.path).to_have_attribute("data-path", expected_path)
    expect(golive.status).to_have_text("LIVE", timeout=seconds(30) * 1000)
    wait_for_status(creator, stream["id"], "live", within=20)

    golive.stop()  # a dialog confirms Stop while live
    expect(golive.path).to_have_text("Not live.")
    wait_for_status(creator, stream["id"], "ended", within=20)


def test_whip_negotiates_h264(qa_target, creator, context: BrowserContext):
    """Where WebRTC ingest is offered, the browser's WHIP session sends H.264
    (what the media server turns into HLS without transcoding)."""
    stream = creator.create_stream("WHIP codec")
    require_offered("webrtc" in stream["ingest"]["protocols"], "WebRTC (WHIP) ingest")
    page = context.new_page()
    LoginPage(page, qa_target.base_url).open().log_in(qa_target.email, qa_target.password)
    page.wait_for_url(lambda url: not url.endswith("/login"), timeout=seconds(15) * 1000)
    sdp: dict[str, str] = {}
    page.on("request", lambda r: _note(sdp, "offer", r.url, r.method, r.post_data))
    page.on("response", lambda r: _note(sdp, "answer", r.url, r.request.method, _text(r)))
    golive = GoLivePage(page, qa_target.base_url, stream["id"]).open()
    golive.preview_playing()
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=seconds(30) * 1000)
    assert first_video_codec(sdp.get("offer", "")) == "H264", "the offer does not lead with H.264"
    assert first_video_codec(sdp.get("answer", "")) == "H264", "the answer did not pick H.264"
    golive.stop()
    wait_for_status(creator, stream["id"], "ended", within=20)


def _note(sdp: dict[str, str], side: str, url: str, method: str, body: str | None) -> None:
    if "/rtc/v1/whip/" in url and method == "POST" and body:
        sdp.setdefault(side, body)


def _text(response) -> str | None:
    try:
        return response.text()
    except Exception:  # noqa: BLE001 (a body the browser already dropped)
        return None
