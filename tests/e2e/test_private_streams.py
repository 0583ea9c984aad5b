"""Private streams end to end: the CDN edge (nginx, asking the studio to
check Cloud CDN signed cookies) refuses a private stream's objects without a
valid cookie, and Chromium plays a private live stream for its owner and a
share-link holder but not for a stranger."""

from __future__ import annotations

import re
import time

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from studio.extensions import db
from studio.models import Stream
from studio.storage import signing
from studio.storage.gcs import make_client
from studio.streams import access
from tests.conftest import PASSWORD
from tests.e2e.pages import LoginPage, WatchPage

pytestmark = pytest.mark.e2e


def make_private(studio_stack, public_id: str) -> None:
    with studio_stack.app.app_context():
        stream = db.session.query(Stream).filter_by(public_id=public_id).one()
        access.set_visibility(db.session, stream, "private")
        db.session.commit()
        db.session.remove()


def share_link(studio_stack, public_id: str) -> str:
    with studio_stack.app.app_context():
        stream = db.session.query(Stream).filter_by(public_id=public_id).one()
        token = access.create_share_link(db.session, stream).token
        db.session.commit()
        db.session.remove()
    return f"{studio_stack.base_url}/watch/{public_id}?share={token}"


def put(studio_stack, name: str, data: bytes, content_type: str, cache: str) -> None:
    blob = make_client(studio_stack.gcs_url).bucket(studio_stack.bucket).blob(name)
    blob.cache_control = cache
    blob.upload_from_string(data, content_type=content_type)


def edge(studio_stack, name: str, cookie: str | None = None, origin: str | None = None):
    headers = {}
    if cookie:
        headers["Cookie"] = f"{signing.COOKIE_NAME}={cookie}"
    if origin:
        headers["Origin"] = origin
    return requests.get(f"{studio_stack.edge_url}/{name}", headers=headers, timeout=10)


def owner_cookie(session: requests.Session, studio_stack, public_id: str) -> str:
    """The signed cookie the studio hands the signed-in owner."""
    reply = session.get(f"{studio_stack.base_url}/watch/{public_id}/access", timeout=10)
    assert reply.status_code == 200, reply.text
    morsel = reply.cookies.get(signing.COOKIE_NAME)
    assert morsel
    return morsel


def test_edge_serves_private_objects_only_with_a_valid_cookie(studio_stack):
    """Playlist, segment, replay and thumbnails of a private stream: 403
    without a cookie, with an expired or tampered one, or one of another
    stream; 200 with the cookie the studio gave the owner. A public stream
    still plays with no cookie at all."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Private edge")
    other = studio_stack.create_stream(email, "Other private")
    public = studio_stack.create_stream(email, "Public edge")
    for public_id in (stream.public_id, other.public_id):
        make_private(studio_stack, public_id)
    folder = f"private/{stream.public_id}"
    objects = {
        f"{folder}/index.m3u8": (b"#EXTM3U\n", "application/vnd.apple.mpegurl", "max-age=1"),
        f"{folder}/7/1.ts": (b"\x47" * 188, "video/mp2t", "public, max-age=31536000, immutable"),
        f"{folder}/7/replay.m3u8": (b"#EXTM3U\n#R", "application/vnd.apple.mpegurl", "public"),
        f"{folder}/thumbnail.jpg": (b"\xff\xd8live", "image/jpeg", "public, max-age=10"),
        f"{folder}/7/thumbnail.jpg": (b"\xff\xd8first", "image/jpeg", "public, max-age=31536000"),
    }
    for name, (data, content_type, cache) in objects.items():
        put(studio_stack, name, data, content_type, cache)
    put(studio_stack, f"live/{public.public_id}/index.m3u8", b"#EXTM3U\n", "text/plain", "no-store")

    owner = studio_stack.login(email)
    cookie = owner_cookie(owner, studio_stack, stream.public_id)
    other_cookie = owner_cookie(owner, studio_stack, other.public_id)
    key = signing.SigningKey(
        studio_stack.env["STUDIO_CDN_SIGNING_KEY_NAME"],
        signing.decode_key(studio_stack.env["STUDIO_CDN_SIGNING_KEY"]),
    )
    prefix = f"{studio_stack.edge_url}/{folder}/"
    expired = signing.cookie_value(key, prefix, int(time.time()) - 1)
    policy, signature = cookie.split(":Signature=")
    tampered = f"{policy.replace('Expires=', 'Expires=9')}:Signature={signature}"
    wrong_key = signing.cookie_value(signing.SigningKey(key.name, bytes(16)), prefix, 2**31)
    wider = signing.cookie_value(
        signing.SigningKey(key.name, bytes(16)), f"{studio_stack.edge_url}/", 2**31
    )

    for name, (data, content_type, _) in objects.items():
        assert (name, edge(studio_stack, name).status_code) == (name, 403)
        for bad in (expired, tampered, other_cookie, wrong_key, wider, "garbage"):
            assert (name, edge(studio_stack, name, bad).status_code) == (name, 403)
        reply = edge(studio_stack, name, cookie)
        assert (name, reply.status_code) == (name, 200)
        assert reply.content == data
        assert reply.headers["Content-Type"] == content_type
    # Served from the edge's cache, still only with the cookie.
    assert edge(studio_stack, f"{folder}/7/1.ts").status_code == 403
    assert edge(studio_stack, f"{folder}/7/1.ts", cookie).status_code == 200

    # hls.js sends the cookie with credentialed CORS: only the studio's origin.
    base = studio_stack.base_url
    reply = edge(studio_stack, f"{folder}/index.m3u8", cookie, origin=base)
    assert reply.headers["Access-Control-Allow-Origin"] == base
    assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    reply = edge(studio_stack, f"{folder}/index.m3u8", cookie, origin="https://evil.test")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in reply.headers

    assert edge(studio_stack, f"live/{public.public_id}/index.m3u8").status_code == 200
    # A stranger gets no cookie (and the stream looks like none at all).
    stranger = studio_stack.login(studio_stack.create_user())
    reply = stranger.get(f"{base}/watch/{stream.public_id}/access", timeout=10)
    assert reply.status_code == 404 and signing.COOKIE_NAME not in reply.cookies


def test_owner_and_share_link_holder_play_a_private_live_stream_a_stranger_does_not(
    studio_stack, ffmpeg_publisher, page: Page, browser: Browser
):
    """RTMP into a private stream: the owner's watch page plays it live from
    the CDN's private prefix (hls.js sends the signed cookie); a share-link
    holder's too, from a URL without the secret; a stranger gets the 404 page
    and the edge refuses the playlist to their browser."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Private live")
    make_private(studio_stack, stream.public_id)
    link = share_link(studio_stack, stream.public_id)
    playlist = f"{studio_stack.edge_url}/private/{stream.public_id}/index.m3u8"

    LoginPage(page, base).open().log_in(email, PASSWORD)
    expect(page.get_by_role("heading", name="Your streams")).to_be_visible()
    edge_requests: list[str] = []
    page.on("request", lambda r: edge_requests.append(r.url))
    watch = WatchPage(page).open(base, stream.public_id)
    expect(watch.status).to_have_text("offline")

    ffmpeg_publisher.start(stream.publish_url)
    expect(watch.status).to_have_text("LIVE", timeout=15_000)
    watch.wait_until_playing(past_seconds=2.0, timeout_ms=60_000)
    assert playlist in edge_requests
    assert any(re.search(rf"/private/{stream.public_id}/\d+/\d+\.ts$", u) for u in edge_requests)
    assert not any(f"/live/{stream.public_id}/" in u for u in edge_requests)

    holder_context = browser.new_context()
    stranger_context = browser.new_context()
    try:
        holder = holder_context.new_page()
        holder.goto(link)
        assert holder.url == f"{base}/watch/{stream.public_id}"  # the secret left the URL
        WatchPage(holder).wait_until_playing(past_seconds=2.0, timeout_ms=60_000)

        stranger = stranger_context.new_page()
        reply = stranger.goto(f"{base}/watch/{stream.public_id}")
        assert reply is not None and reply.status == 404
        expect(stranger.get_by_test_id("video")).to_have_count(0)
        status = stranger.evaluate(
            "async (url) => (await fetch(url, {credentials: 'include'})).status", playlist
        )
        assert status == 403
    finally:
        holder_context.close()
        stranger_context.close()

    # The replay plays for the owner from the private prefix too.
    ffmpeg_publisher.stop_all()
    expect(watch.status).to_have_text("ended", timeout=30_000)
    expect(watch.latest_replay).to_be_visible(timeout=60_000)
    watch.latest_replay.click()
    watch.wait_until_playing(past_seconds=1.0, timeout_ms=30_000)
    replay = re.compile(rf"/private/{stream.public_id}/\d+/replay\.m3u8$")
    assert any(replay.search(url) for url in edge_requests)


def test_going_private_while_live_keeps_the_owner_playing_and_stops_others(
    studio_stack, ffmpeg_publisher, page: Page, browser: Browser
):
    """A public stream made private while live: its objects move to the
    private prefix; the owner's player asks the studio where the stream now
    plays (getting the signed cookie) and goes on playing from there, while
    a stranger's page, whose socket the studio closes, says the stream is
    not available in its player and its chat, and shows no status."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Going private")
    LoginPage(page, base).open().log_in(email, PASSWORD)
    expect(page.get_by_role("heading", name="Your streams")).to_be_visible()
    edge_requests: list[str] = []
    page.on("request", lambda r: edge_requests.append(r.url))
    watch = WatchPage(page).open(base, stream.public_id)
    stranger_context = browser.new_context()
    try:
        stranger = stranger_context.new_page()
        other = WatchPage(stranger).open(base, stream.public_id)
        ffmpeg_publisher.start(stream.publish_url)
        watch.wait_until_playing(past_seconds=2.0, timeout_ms=60_000)
        other.wait_until_playing(past_seconds=2.0, timeout_ms=60_000)

        make_private(studio_stack, stream.public_id)

        private_segment = re.compile(rf"/private/{stream.public_id}/\d+/\d+\.ts$")
        page.wait_for_function(
            "() => document.getElementById('player').dataset.private === '1'", timeout=60_000
        )
        watch.wait_until_playing(past_seconds=4.0, timeout_ms=60_000)
        assert any(private_segment.search(url) for url in edge_requests)
        expect(stranger.get_by_test_id("player-message")).to_have_text(
            "This stream is not available.", timeout=60_000
        )
        expect(stranger.get_by_test_id("chat-state")).to_have_text("This stream is not available.")
        expect(stranger.get_by_test_id("watch-status")).to_be_hidden()
        expect(stranger.get_by_test_id("chat-messages")).to_be_empty()
        expect(stranger.get_by_test_id("viewer-count")).to_be_hidden()
        expect(stranger.get_by_role("heading", name="Past broadcasts")).to_be_hidden()
    finally:
        stranger_context.close()
