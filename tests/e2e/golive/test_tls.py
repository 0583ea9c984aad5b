"""A camera goes live from a page served over HTTPS by nginx with the
development certificate: the page is a secure context and its ingest
websocket (wss://) passes through nginx to the studio."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.conftest import VAR
from tests.e2e.golive.harness import run_studio
from tests.e2e.golive.pages import GoLivePage, log_in, open_go_live
from tests.e2e.golive.whip_double import SrsWhipDouble


@pytest.fixture(scope="module")
def studio(app, services):
    token = app.config["HOOK_TOKEN"]
    # No SRS here: the WHIP route leads to a closed port (nginx-rtmp takes the socket).
    with run_studio(VAR / "golive-tls-e2e", services, token, srs_api_url="http://127.0.0.1:9") as s:
        yield s


def test_camera_goes_live_over_https_and_wss(studio, browser: Browser, make_user, make_stream):
    """Over HTTPS the page may use the camera, and its wss:// ingest reaches
    the studio through nginx as the logged-in owner (upgrade headers, Host
    with its port for the origin check, the client address for the session)."""
    owner = make_user()
    stream = make_stream(owner)
    # The certificate is self-signed (a developer accepts it once in the browser).
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    log_in(page, studio.tls_url, owner.email)
    golive = GoLivePage(page, studio.tls_url, stream.public_id).open()
    assert page.evaluate("window.isSecureContext")
    golive.preview_playing()
    golive.go_live_button.click()
    expect(golive.path).to_have_attribute("data-path", "websocket", timeout=15_000)
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    golive.stop()
    expect(golive.status).to_have_text("ended", timeout=20_000)
    context.close()


@pytest.fixture(scope="module")
def srs_studio(app, services):
    """MEDIA_ENGINE=srs with no STUDIO_WHIP_URL: pages post WHIP to their own
    origin, and nginx proxies /rtc/v1/whip/ to SrsWhipDouble (SRS's API)."""
    token = app.config["HOOK_TOKEN"]
    with SrsWhipDouble() as double:
        env = {"STUDIO_MEDIA_ENGINE": "srs", "STUDIO_SRS_API_URL": "http://127.0.0.1:9"}
        var_dir = VAR / "golive-tls-whip"
        with run_studio(var_dir, services, token, env, srs_api_url=double.url) as running:
            double.hook_url = f"{running.url}/hooks/srs?token={token}"
            yield running, double


def go_live_over_whip(context: BrowserContext, studio, email: str, public_id: str) -> GoLivePage:
    """The owner's go-live page over HTTPS, live over WebRTC (WHIP)."""
    golive = open_go_live(context, studio.tls_url, email, public_id)
    golive.go_live_button.click()
    expect(golive.path).to_have_attribute("data-path", "webrtc", timeout=15_000)
    expect(golive.status).to_have_text("LIVE")
    return golive


def test_whip_goes_through_the_studio_origin(srs_studio, browser: Browser, make_user, make_stream):
    """In production shape (HTTPS page, WHIP on the same origin, nginx in
    front of SRS), the offer reaches SRS through nginx and frames arrive."""
    studio, double = srs_studio
    owner = make_user()
    stream = make_stream(owner)
    context = browser.new_context(ignore_https_errors=True)
    golive = go_live_over_whip(context, studio, owner.email, stream.public_id)
    session = double.sessions[-1]
    assert session.param == f"app=live&stream={stream.public_id}&secret={stream.stream_key}"
    golive.stop()
    expect(golive.status).to_have_text("ended")
    assert session.token in double.deletes
    context.close()


def test_leaving_the_page_deletes_the_whip_session(
    srs_studio, browser: Browser, make_user, make_stream
):
    """Closing or leaving the page sends DELETE (fetch keepalive on pagehide),
    so SRS ends the stream at once instead of after its ~30 s RTC timeout."""
    studio, double = srs_studio
    owner = make_user()
    stream = make_stream(owner)
    context = browser.new_context(ignore_https_errors=True)
    golive = go_live_over_whip(context, studio, owner.email, stream.public_id)
    session = double.sessions[-1]

    golive.page.goto(f"{studio.tls_url}/")  # leave: pagehide
    stream_page = context.new_page()
    stream_page.goto(f"{studio.tls_url}/streams/{stream.public_id}")
    expect(stream_page.get_by_test_id("stream-status")).to_have_text("ended", timeout=10_000)
    assert session.token in double.deletes
    context.close()
