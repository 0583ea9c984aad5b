"""Viewer counts in Chromium against the whole studio (nginx → web and socket
tiers, Redis, PostgreSQL): watch pages and embeds open in a visitor's
browser are counted on every page that shows the count, closing them lowers
it, and the broadcast keeps its peak."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import PASSWORD
from tests.e2e.pages import LoginPage, StreamPage, TopBar, WatchPage
from tests.e2e.test_live_status import hook

pytestmark = pytest.mark.e2e


@pytest.fixture()
def visitor(browser: Browser):
    """A browser of someone not logged in."""
    context = browser.new_context()
    yield context
    context.close()


def _creator_on_stream_page(studio_stack, page: Page):
    """A new creator's new stream, and its stream page open in `page`."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email)
    LoginPage(page, studio_stack.base_url).open().log_in(email, PASSWORD)
    expect(TopBar(page).signed_in_as(email)).to_be_visible()
    return stream, StreamPage(page).open(studio_stack.base_url, stream.public_id)


def test_open_pages_are_counted_everywhere_and_the_peak_is_kept(
    studio_stack, page: Page, context: BrowserContext, visitor: BrowserContext
):
    """Two watch pages and an embed of a visitor make "3 watching" on each of
    them and on the creator's stream and go-live pages (whose own sockets do
    not count, nor does the creator's own watch page); two closed, "1
    watching" everywhere; the stream list shows the count and the broadcasts list the
    peak of 3."""
    stream, studio = _creator_on_stream_page(studio_stack, page)
    base = studio_stack.base_url
    expect(studio.viewers).to_have_text("0 watching")
    hook(studio_stack, stream.public_id, stream.stream_key, "publish")
    expect(studio.status).to_have_text("LIVE")

    golive = context.new_page()
    golive.goto(f"{base}/streams/{stream.public_id}/live")
    golive_viewers = golive.get_by_test_id("viewer-count")
    own_watch = WatchPage(context.new_page()).open(base, stream.public_id)
    watches = [WatchPage(visitor.new_page()).open(base, stream.public_id) for _ in range(2)]
    embed = visitor.new_page()
    embed.goto(f"{base}/embed/{stream.public_id}")
    embed_viewers = embed.get_by_test_id("viewer-count")

    counts = (studio.viewers, golive_viewers, own_watch.viewers, embed_viewers)
    for count in (*counts, *(w.viewers for w in watches)):
        expect(count).to_have_text("3 watching", timeout=20_000)

    for watch in watches:
        watch.page.close()
    for count in counts:
        expect(count).to_have_text("1 watching", timeout=20_000)

    page.goto(f"{base}/streams")
    expect(page.get_by_test_id("stream-list").get_by_test_id("viewer-count")).to_have_text(
        "1 watching"
    )

    hook(studio_stack, stream.public_id, stream.stream_key, "publish_done")
    studio = StreamPage(page).open(base, stream.public_id)
    expect(studio.broadcasts.get_by_test_id("peak-viewers")).to_have_text("3")


def test_the_creators_preview_follows_the_stream_and_is_not_counted(
    studio_stack, page: Page, visitor: BrowserContext
):
    """The stream page's preview is the stream's embeddable player: it
    follows the stream like any viewer's player, and the creator watching it
    is not counted (a visitor who joins after it sees "1 watching")."""
    stream, studio = _creator_on_stream_page(studio_stack, page)
    base = studio_stack.base_url
    page.get_by_test_id("preview").scroll_into_view_if_needed()
    preview = page.frame_locator("[data-testid=preview]")
    expect(preview.get_by_test_id("offline-card")).to_be_visible()

    hook(studio_stack, stream.public_id, stream.stream_key, "publish")
    expect(preview.get_by_test_id("watch-status")).to_have_text("LIVE", timeout=20_000)
    watch = WatchPage(visitor.new_page()).open(base, stream.public_id)
    expect(watch.viewers).to_have_text("1 watching", timeout=20_000)
    for count in (studio.viewers, preview.get_by_test_id("viewer-count")):
        expect(count).to_have_text("1 watching", timeout=20_000)
