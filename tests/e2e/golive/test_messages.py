"""What the go-live page tells the creator when going live cannot work."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from studio.extensions import db
from studio.models import Stream
from studio.streams import service
from tests.e2e.golive.conftest import INSECURE_HOST
from tests.e2e.golive.pages import GoLivePage, log_in, open_go_live


def test_insecure_page_explains_https(studio_stack, context: BrowserContext):
    """Opened over plain http under a real host name, the browser hides the
    camera; the page says HTTPS is needed instead of failing silently."""
    base = studio_stack.base_url.replace("127.0.0.1", INSECURE_HOST)
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email)
    page = context.new_page()
    log_in(page, base, email)
    golive = GoLivePage(page, base, stream.public_id).open()
    assert page.evaluate("window.isSecureContext") is False
    expect(golive.message).to_contain_text("HTTPS")
    expect(golive.go_live_button).to_be_disabled()


def test_disabled_stream_is_refused_with_a_reason(studio_stack, context: BrowserContext):
    """The ingest refuses a disabled stream and the page says what to do."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email)
    with studio_stack.app.app_context():
        row = db.session.scalar(select(Stream).where(Stream.public_id == stream.public_id))
        service.set_disabled(db.session, row, True)
        db.session.commit()
        db.session.remove()
    golive = open_go_live(context, studio_stack.base_url, email, stream.public_id)
    golive.go_live_button.click()
    expect(golive.message).to_contain_text("disabled")
    expect(golive.go_live_button).to_be_enabled()
    expect(golive.path).to_have_text("Not live.")
    assert studio_stack.stream_row(stream.public_id)["status"] == "created"


def test_denied_camera_says_how_to_allow_it(studio_stack, browser_type, browser_type_launch_args):
    """The camera permission is refused: the page says where to allow it.
    (A Chromium without the auto-accepting fake prompt, where the creator's
    earlier refusal is recorded for the site.)"""
    args = [a for a in browser_type_launch_args["args"] if a != "--use-fake-ui-for-media-stream"]
    browser = browser_type.launch(**{**browser_type_launch_args, "args": args})
    try:
        base = studio_stack.base_url
        email = studio_stack.create_user()
        stream = studio_stack.create_stream(email)
        context = browser.new_context()
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        for name in ("camera", "microphone"):
            cdp.send(
                "Browser.setPermission",
                {"permission": {"name": name}, "setting": "denied", "origin": base},
            )
        log_in(page, base, email)
        golive = GoLivePage(page, base, stream.public_id).open()
        expect(golive.message).to_contain_text("not allowed to use the camera")
        expect(golive.go_live_button).to_be_disabled()
    finally:
        browser.close()
