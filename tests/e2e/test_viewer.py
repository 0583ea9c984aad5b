"""What viewers get, end to end with real media (ffmpeg → nginx-rtmp → workers
→ fake-gcs-server → CDN edge → Chromium): thumbnails at the edge as link
previews and on the home page, the embeddable player inside another site's
page, the replay page, and pages that fit a phone."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
import redis
import requests
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from studio import viewers
from studio.extensions import db
from studio.models import Broadcast, Stream, utcnow
from tests.conftest import PASSWORD
from tests.e2e.pages import HomePage, LoginPage, wait_until_video_plays
from tests.e2e.test_live_playback import stop_publisher
from tests.polling import wait_until
from tests.webhook_receiver import serve

pytestmark = pytest.mark.e2e

VIEWER_ZONE = "America/Los_Angeles"


@pytest.fixture()
def another_site():
    """Serve one HTML page from another origin (http://localhost:PORT/; the
    studio is http://127.0.0.1:...): `another_site(html)` returns its URL."""
    servers: list[ThreadingHTTPServer] = []

    def serve(html: str) -> str:
        body = html.encode()

        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://localhost:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def _meta(html: str, name: str) -> str | None:
    match = re.search(rf'<meta (?:property|name)="{re.escape(name)}" content="([^"]*)">', html)
    return unescape(match.group(1)) if match else None


def _is_jpeg(reply: tuple[int, dict, bytes]) -> bool:
    status, headers, body = reply
    return status == 200 and headers.get("Content-Type") == "image/jpeg" and body[:2] == b"\xff\xd8"


def test_live_thumbnail_at_the_edge_previews_the_stream_and_the_embed_plays_elsewhere(
    studio_stack, ffmpeg_publisher, another_site, page: Page
):
    """While live, a thumbnail of the stream reaches the CDN edge (a JPEG,
    cached 10 s) and becomes the watch page's og:image and the home page's
    tile; another site's page frames /embed/<id>, which plays the stream
    muted, fits the embed code's size and unmutes on a tap. The watch page
    itself cannot be framed."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Thumbnail test")
    name = f"live/{stream.public_id}/thumbnail.jpg"
    publisher = ffmpeg_publisher.start(stream.publish_url)
    try:
        wait_until(
            lambda: _is_jpeg(studio_stack.edge_get(name)),
            timeout=60,
            what="the live thumbnail at the edge",
        )
        _, headers, _ = studio_stack.edge_get(name)
        assert headers["Cache-Control"] == "public, max-age=10"

        watch_url = f"{studio_stack.base_url}/watch/{stream.public_id}"
        html = requests.get(watch_url, timeout=10).text
        assert _meta(html, "og:image") == f"{studio_stack.edge_url}/{name}"
        assert _meta(html, "og:title") == "Thumbnail test"
        assert _meta(html, "twitter:card") == "summary_large_image"
        assert stream.stream_key not in html

        home = HomePage(page).open(studio_stack.base_url)
        tile = home.live_tile("Thumbnail test")
        expect(tile).to_be_visible()
        thumbnail = tile.locator("img")
        expect(thumbnail).to_have_attribute("src", f"{studio_stack.edge_url}/{name}")
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )

        embed_url = f"{studio_stack.base_url}/embed/{stream.public_id}"
        site = (
            f'<!doctype html><h1>My blog</h1><iframe name="player" src="{embed_url}" '
            'width="640" height="400" allow="autoplay; fullscreen"></iframe>'
            f'<iframe name="watch" src="{watch_url}"></iframe>'
        )
        page.goto(another_site(site))
        player = page.frame_locator("iframe[name=player]")
        expect(player.get_by_test_id("watch-status")).to_have_text("LIVE", timeout=15_000)
        frame = page.frame(name="player")
        wait_until_video_plays(frame, past_seconds=2.0)
        # The embed code's 640x400 holds the whole player, down to its delay line.
        expect(player.locator("[data-latency]")).to_be_visible()
        bottom = frame.evaluate(
            "() => document.querySelector('[data-latency]').getBoundingClientRect().bottom"
        )
        assert bottom <= 400, f"the delay line ends at {bottom}px of a 400px frame"
        unmute = player.get_by_test_id("unmute")
        expect(unmute).to_be_visible()
        unmute.click()
        expect(unmute).to_be_hidden()
        assert frame.evaluate("() => document.getElementById('video').muted") is False
        # The watch page refuses to be framed: its content never loads there.
        watch_frame = page.frame(name="watch")
        assert watch_frame is not None
        assert watch_frame.evaluate("() => document.getElementById('player')") is None
    finally:
        stop_publisher(publisher)


def test_replay_page_plays_the_broadcast_with_its_thumbnail(
    studio_stack, ffmpeg_publisher, page: Page
):
    """After a broadcast ends, its replay page plays it from the CDN to its
    end; the broadcast's own thumbnail (immutable) is its poster, and the
    page shows its duration and its start in the viewer's time zone."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Replay page test")
    publisher = ffmpeg_publisher.start(stream.publish_url, seconds=8)
    publisher.wait(timeout=60)
    row = wait_until(
        lambda: (
            (r := studio_stack.stream_row(stream.public_id))["broadcasts"][0]["replay_ready_at"]
            and r
        ),
        timeout=60,
        what="the replay",
    )
    broadcast_id = row["broadcasts"][0]["id"]
    thumbnail = f"live/{stream.public_id}/{broadcast_id}/thumbnail.jpg"
    wait_until(
        lambda: _is_jpeg(studio_stack.edge_get(thumbnail)),
        timeout=30,
        what="the broadcast's thumbnail at the edge",
    )
    assert studio_stack.edge_get(thumbnail)[1]["Cache-Control"] == (
        "public, max-age=31536000, immutable"
    )

    page.goto(f"{studio_stack.base_url}/watch/{stream.public_id}/replays/{broadcast_id}")
    video = page.get_by_test_id("video")
    expect(video).to_have_attribute("poster", f"{studio_stack.edge_url}/{thumbnail}")
    expect(page.get_by_test_id("replay-duration")).to_have_text(re.compile(r"^0:0[6-9]$"))
    started = page.get_by_test_id("replay-started")
    expect(started).not_to_have_text(re.compile("UTC"))  # formatted by the browser
    video.evaluate(
        "video => video.addEventListener('ended', () => { video.dataset.ended = 'true'; })"
    )
    wait_until_video_plays(page, past_seconds=1.0)
    expect(video).to_have_attribute("data-ended", "true", timeout=60_000)
    expect(page.get_by_test_id("player-message")).to_have_text("End of the replay.")


def test_replay_page_opened_early_starts_once_the_replay_is_written(
    studio_stack, ffmpeg_publisher, page: Page
):
    """A viewer who opens a replay page while the replay is still being
    written (here: the workers are down) is told so, and the replay starts
    by itself once it is written (the stream's websocket announces it)."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Early replay")
    publisher = ffmpeg_publisher.start(stream.publish_url, seconds=6)
    wait_until(
        lambda: studio_stack.stream_row(stream.public_id)["status"] == "live",
        timeout=30,
        what="the stream to go live",
    )
    studio_stack.stop_workers()
    try:
        publisher.wait(timeout=60)
        row = wait_until(
            lambda: (
                (r := studio_stack.stream_row(stream.public_id))["broadcasts"][0]["ended_at"] and r
            ),
            timeout=30,
            what="the broadcast to end",
        )
        broadcast_id = row["broadcasts"][0]["id"]
        page.goto(f"{studio_stack.base_url}/watch/{stream.public_id}/replays/{broadcast_id}")
        expect(page.get_by_test_id("player-message")).to_contain_text("being prepared")
        expect(page.locator("#player")).to_have_attribute("data-connected", "true")
    finally:
        studio_stack.start_workers()
    wait_until_video_plays(page, past_seconds=1.0, timeout_ms=90_000)
    assert page.locator("#player").get_attribute("data-mode") == "replay"


def test_tiles_say_how_long_ago_the_broadcast_started(studio_stack, phone: Page):
    """A live tile reads "started 2 hours ago" (its date in the viewer's zone
    on hover), not the full date; a replay's tile too."""
    email = studio_stack.create_user()
    # Ended just now, so that they are among the home page's latest replays.
    for title, ago in (("Earlier show", timedelta(hours=2)), ("Older show", timedelta(days=22))):
        public_id = studio_stack.create_stream(email, title).public_id
        _seed_replay(studio_stack, public_id, ago=ago, length=ago - timedelta(minutes=1))
    stream = studio_stack.create_stream(email, "Long broadcast")
    with studio_stack.app.app_context():
        row = db.session.scalar(select(Stream).where(Stream.public_id == stream.public_id))
        started = utcnow() - timedelta(hours=2, minutes=5)
        db.session.add(
            Broadcast(stream=row, client_id="seeded", protocol="rtmp", started_at=started)
        )
        row.status = "live"
        db.session.commit()
        db.session.remove()
    # Someone watching puts it first, ahead of streams other tests left live.
    audience = redis.Redis.from_url(studio_stack.redis_url)
    audience.zadd(viewers.key(stream.public_id), {"a-viewer": time.time()})
    home = HomePage(phone).open(studio_stack.base_url)
    expect(home.live_item("Long broadcast").get_by_test_id("tile-viewers")).to_have_text(
        "1 watching"
    )
    started_text = home.live_item("Long broadcast").get_by_test_id("tile-started")
    expect(started_text).to_have_text("2 hours ago")
    local = started.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(VIEWER_ZONE))
    expect(started_text).to_have_attribute("title", re.compile(local.strftime("%b %-d, %Y")))
    replay = home.replays.locator("li").filter(has_text="Earlier show")
    expect(replay.get_by_test_id("tile-broadcast-at")).to_have_text("2 hours ago")
    older = home.replays.locator("li").filter(has_text="Older show")
    expect(older.get_by_test_id("tile-broadcast-at")).to_have_text("3 weeks ago")


def test_share_copies_the_pages_link(studio_stack, browser: Browser):
    """Share on a watch page copies its link (a desktop has no share sheet);
    on a replay page, the replay's link."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Share me")
    _seed_replay(studio_stack, stream.public_id)
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    try:
        watch_url = f"{studio_stack.base_url}/watch/{stream.public_id}"
        page.goto(watch_url)
        share = page.get_by_test_id("share")
        share.click()
        expect(share).to_have_text("Link copied")
        assert page.evaluate("navigator.clipboard.readText()") == watch_url
        expect(share).to_have_text("Share", timeout=5_000)

        page.get_by_test_id("replay-page-link").first.click()
        expect(page.get_by_test_id("replay-badge")).to_be_visible()
        share.click()
        expect(share).to_have_text("Link copied")
        assert page.evaluate("navigator.clipboard.readText()") == page.url
    finally:
        context.close()


def _seed_replay(
    studio_stack, public_id: str, ago: timedelta = timedelta(hours=2), length=timedelta(minutes=40)
) -> datetime:
    """An ended broadcast with its replay written (no media: the pages only
    list it), started `ago` and `length` long; returns when it started."""
    with studio_stack.app.app_context():
        stream = db.session.scalar(select(Stream).where(Stream.public_id == public_id))
        started = (utcnow() - ago).replace(second=0, microsecond=0)
        db.session.add(
            Broadcast(
                stream=stream,
                client_id="seeded",
                protocol="rtmp",
                started_at=started,
                ended_at=started + length,
                replay_ready_at=utcnow(),
            )
        )
        stream.status = "ended"
        db.session.commit()
        db.session.remove()
    return started


@pytest.fixture()
def phone(browser: Browser):
    """A 390x844 phone-sized page, in a viewer's time zone far from UTC."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        timezone_id=VIEWER_ZONE,
        locale="en-US",
    )
    yield context.new_page()
    context.close()


def test_pages_fit_a_phone(studio_stack, phone: Page):
    """At 390 px wide the home page, a watch page, the API reference, the
    creator's stream page and a webhook's delivery log scroll only
    vertically and long URLs wrap on lines of their own (screenshots are
    kept in the stack's var directory, under screens/)."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(
        email, "A rather long stream title for a small phone screen"
    )
    started = _seed_replay(studio_stack, stream.public_id)
    screens = studio_stack.var_dir / "screens"
    screens.mkdir(exist_ok=True)
    base = studio_stack.base_url

    def check(path: str, shot: str, full_page: bool = True) -> None:
        phone.goto(f"{base}{path}")
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        phone.screenshot(path=str(screens / f"{shot}.png"), full_page=full_page)
        assert width <= 390, f"{path} is {width}px wide"

    check("/", "home")
    expect(phone.get_by_test_id("replay-tile").first).to_be_visible()
    check(f"/watch/{stream.public_id}", "watch")
    # The start of the replay, in the viewer's zone (the page has it in UTC).
    local = started.astimezone(ZoneInfo(VIEWER_ZONE))
    shown = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    expect(phone.get_by_test_id("replays").locator("time")).to_contain_text(shown)
    # The stream has ended: no "1 watching" (the live audience) for this viewer.
    expect(phone.get_by_test_id("viewer-count")).to_be_hidden()
    check("/api/v1/docs", "api-docs", full_page=False)  # too long to shoot whole
    # Its tables become one block per row, each cell named.
    first_cell = phone.get_by_test_id("api-schema").first.locator("td").first
    expect(first_cell).to_have_css("display", "block")
    expect(first_cell).to_have_attribute("data-label", "Field")
    LoginPage(phone, base).open().log_in(email, PASSWORD)
    expect(phone.get_by_test_id("my-streams")).to_be_visible()
    check(f"/streams/{stream.public_id}", "stream")
    # A URL field is as wide as the card, not squeezed beside its label.
    hls = phone.get_by_test_id("hls-url")
    assert hls.bounding_box()["width"] > 300
    # Each broadcast is a card whose every line shows without sideways scrolling.
    peak = phone.get_by_test_id("peak-viewers").first
    expect(peak).to_have_css("display", "block")
    peak.scroll_into_view_if_needed()
    box = peak.bounding_box()
    assert box["x"] + box["width"] <= 390, f"peak viewers end at {box['x'] + box['width']}px"
    check("/streams", "streams")
    # Each stream is a card: its title has the card's width, not a squeezed column.
    title = phone.get_by_test_id("stream-list").get_by_role("link").first
    assert title.bounding_box()["width"] > 200
    # A webhook's delivery log: each attempt is a card too, down to how long it took.
    with serve() as receiver:
        phone.goto(f"{base}/webhooks")
        phone.get_by_label("URL").fill(receiver.url)
        phone.get_by_label(re.compile(r"^stream\.live")).check()
        phone.get_by_role("button", name="Add webhook").click()
        phone.get_by_role("link", name="Open its delivery log").click()
        phone.get_by_test_id("send-test").click()
        expect(phone.get_by_test_id("delivery-status").first).to_have_text(
            "HTTP 200", timeout=20_000
        )
    check(phone.url.removeprefix(base), "webhook-log")
    took = phone.get_by_test_id("delivery-took").first
    expect(took).to_have_css("display", "block")
    box = took.bounding_box()
    assert box["x"] + box["width"] <= 390, f"the time taken ends at {box['x'] + box['width']}px"
