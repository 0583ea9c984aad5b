"""What the go-live page tells the creator when going live cannot work."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from studio.extensions import db
from studio.models import Stream
from studio.streams import service
from tests.e2e.golive.conftest import INSECURE_HOST
from tests.e2e.golive.pages import GoLivePage, log_in


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
    page = context.new_page()
    log_in(page, studio_stack.base_url, email)
    golive = GoLivePage(page, studio_stack.base_url, stream.public_id).open()
    golive.preview_playing()
    golive.go_live_button.click()
    expect(golive.message).to_contain_text("disabled")
    expect(golive.go_live_button).to_be_enabled()
    expect(golive.path).to_have_text("Not live.")
    assert studio_stack.stream_row(stream.public_id)["status"] == "created"
