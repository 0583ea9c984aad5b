"""A creator's first steps in Chromium: register, log in, create a stream,
reveal and copy its key, rotate it."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.pages import MASK, LoginPage, RegisterPage, StreamsPage, TopBar

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
_emails = itertools.count(1)


def new_email() -> str:
    return f"creator-{int(time.time())}-{next(_emails)}@example.com"


def test_creator_reveals_copies_and_rotates_the_stream_key(
    studio_stack, page: Page, context: BrowserContext
):
    """The key is masked until revealed, the copy button puts exactly the
    shown key on the clipboard, and rotating shows a different key."""
    base = studio_stack.base_url
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    email = new_email()

    RegisterPage(page, base).open().register(email, PASSWORD)
    expect(TopBar(page).signed_in_as(email)).to_be_visible()
    TopBar(page).log_out()
    LoginPage(page, base).open().log_in(email, PASSWORD)
    expect(TopBar(page).signed_in_as(email)).to_be_visible()

    stream = StreamsPage(page).create("Morning show")
    expect(stream.status).to_have_text("created")
    expect(stream.server).to_have_text(re.compile(r"^rtmp://.+/live$"))
    expect(stream.key).to_have_text(MASK)

    key = stream.reveal_key()
    assert re.fullmatch(rf"{stream.public_id}\?secret=[A-Za-z0-9_%-]{{20,}}", key), key
    stream.copy_key()
    assert page.evaluate("navigator.clipboard.readText()") == key

    stream.rotate_key()
    expect(stream.key).to_have_text(MASK)  # masked again after the reload
    rotated = stream.reveal_key()
    assert rotated != key
    assert rotated.startswith(f"{stream.public_id}?secret=")
    stream.copy_key()
    assert page.evaluate("navigator.clipboard.readText()") == rotated


def test_the_key_buttons_wait_for_their_script_and_a_failed_reveal_says_so(
    studio_stack, page: Page
):
    """A click before the page's script has run would do nothing: the reveal
    and copy buttons stay disabled until it has. A key that cannot be loaded
    is reported, and the key stays masked; the next try reveals it."""
    base = studio_stack.base_url
    RegisterPage(page, base).open().register(new_email(), PASSWORD)
    stream = StreamsPage(page).create("Night show")
    reveal = page.get_by_test_id("reveal-key")
    error = page.get_by_test_id("reveal-error")

    page.route("**/js/stream_page.js*", lambda route: route.abort())
    page.route("**/js/copy.js*", lambda route: route.abort())
    page.reload()
    expect(reveal).to_be_disabled()
    expect(page.get_by_test_id("copy-stream-key")).to_be_disabled()
    page.unroute("**/js/stream_page.js*")
    page.unroute("**/js/copy.js*")

    key_url = page.locator("[data-stream]").get_attribute("data-key-url")
    assert key_url
    page.route(f"**{key_url}", lambda route: route.fulfill(status=503, body="busy"))
    page.reload()
    expect(page.get_by_test_id("copy-stream-key")).to_be_enabled()
    reveal.click()
    expect(error).to_have_text("The key could not be loaded (the server answered 503). Try again.")
    expect(stream.key).to_have_text(MASK)

    page.unroute(f"**{key_url}")
    stream.reveal_key()
    expect(error).to_be_hidden()
