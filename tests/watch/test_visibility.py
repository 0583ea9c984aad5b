"""Public, unlisted and private streams on the viewers' pages: who sees what,
share links, the signed CDN cookie, and what is listed."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie

import pytest

from studio.models import Stream
from studio.storage import signing
from studio.streams import access
from tests.conftest import PASSWORD
from tests.watch.test_pages import add_broadcast

CDN = "https://cdn.studio.test"


@pytest.fixture()
def owner(make_user):
    return make_user("owner@example.com")


@pytest.fixture()
def private_stream(db, make_stream, owner):
    stream = make_stream(owner, "Secret show")
    access.set_visibility(db.session, stream, "private")
    db.session.commit()
    return stream


@pytest.fixture()
def stranger(app, db, make_user):
    """Another signed-in creator, in a browser of their own."""
    make_user("stranger@example.com")
    other = app.test_client()
    from tests.conftest import Auth

    Auth(other).login("stranger@example.com", PASSWORD)
    return other


def viewer_pages(public_id: str, broadcast_id: int) -> list[str]:
    return [
        f"/watch/{public_id}",
        f"/watch/{public_id}/replays",
        f"/watch/{public_id}/replays/{broadcast_id}",
        f"/watch/{public_id}/access",
        f"/embed/{public_id}",
    ]


def cdn_cookie(reply) -> SimpleCookie:
    cookies = [v for k, v in reply.headers.items() if k == "Set-Cookie"]
    jar = SimpleCookie()
    for cookie in cookies:
        if cookie.startswith(signing.COOKIE_NAME + "="):
            jar.load(cookie)
    return jar


def test_private_pages_are_404_to_anyone_else(client, db, private_stream, stranger):
    """Logged out or signed in as someone else, every viewer page of a private
    stream is the plain 404 page: its title, id and existence are not revealed,
    and no signed cookie is handed out."""
    broadcast = add_broadcast(db, private_stream, ended=True, replay=True)
    unknown = client.get("/watch/aaaaaaaaaaaaaaaa")
    for viewer in (client, stranger):
        for path in viewer_pages(private_stream.public_id, broadcast.id):
            reply = viewer.get(path)
            assert (path, reply.status_code) == (path, 404)
            html = reply.get_data(as_text=True)
            assert "Secret show" not in html and private_stream.public_id not in html
            assert not cdn_cookie(reply)
    assert unknown.status_code == 404


def test_owner_watches_with_a_signed_cookie_for_the_streams_folder(
    client, auth, db, private_stream
):
    """The owner's watch page plays from the private prefix, with a cookie
    that grants exactly that folder on the CDN, for CDN_COOKIE_TTL seconds."""
    auth.login("owner@example.com")
    reply = client.get(f"/watch/{private_stream.public_id}")
    assert reply.status_code == 200
    html = reply.get_data(as_text=True)
    prefix = f"{CDN}/private/{private_stream.public_id}/"
    assert f'data-hls-url="{prefix}index.m3u8"' in html
    assert 'data-private="1"' in html
    assert reply.headers["Cache-Control"] == "private, no-store"
    morsel = cdn_cookie(reply)[signing.COOKIE_NAME]
    assert morsel["path"] == f"/private/{private_stream.public_id}/"
    assert morsel["httponly"] and morsel["samesite"] == "Lax"
    assert int(morsel["max-age"]) == 600
    key = signing.SigningKey.from_config(client.application.config)
    now = time.time()
    assert signing.verify(morsel.value, prefix + "index.m3u8", [key], now)
    assert not signing.verify(morsel.value, f"{CDN}/private/other/index.m3u8", [key], now)
    assert not signing.verify(morsel.value, prefix + "index.m3u8", [key], now + 601)


def test_only_pages_anyone_can_open_offer_share(client, auth, make_stream, private_stream):
    """A public stream's page offers Share with its link; a private one's does
    not, even to its owner: its link alone opens nothing."""
    public = make_stream()
    html = client.get(f"/watch/{public.public_id}").get_data(as_text=True)
    assert f'data-share="https://studio.test/watch/{public.public_id}"' in html
    auth.login("owner@example.com")
    html = client.get(f"/watch/{private_stream.public_id}").get_data(as_text=True)
    assert 'data-testid="share"' not in html


def test_access_renews_the_cookie_for_allowed_viewers(client, auth, private_stream):
    auth.login("owner@example.com")
    reply = client.get(f"/watch/{private_stream.public_id}/access")
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["hls_url"] == f"{CDN}/private/{private_stream.public_id}/index.m3u8"
    assert body["private"] is True and body["renew_in"] == 300
    assert body["expires"] > time.time()
    assert cdn_cookie(reply)[signing.COOKIE_NAME].value


def test_share_link_lets_its_holder_in_until_revoked(app, client, db, private_stream):
    """Opening a share link remembers it in the viewer's session and redirects
    to the plain URL (the secret leaves the address bar); revoking it shuts
    every page again."""
    link = access.create_share_link(db.session, private_stream)
    db.session.commit()
    public_id = private_stream.public_id
    reply = client.get(f"/watch/{public_id}?share={link.token}")
    assert reply.status_code == 302
    assert reply.headers["Location"] == f"/watch/{public_id}"
    page = client.get(f"/watch/{public_id}")
    assert page.status_code == 200
    assert link.token not in page.get_data(as_text=True)
    assert cdn_cookie(page)[signing.COOKIE_NAME].value
    assert client.get(f"/embed/{public_id}").status_code == 200
    assert client.get(f"/watch/{public_id}/access").status_code == 200

    access.revoke_share_link(db.session, link)
    db.session.commit()
    for path in (f"/watch/{public_id}", f"/watch/{public_id}/access", f"/embed/{public_id}"):
        assert client.get(path).status_code == 404
    # The revoked link itself no longer opens anything.
    assert client.get(f"/watch/{public_id}?share={link.token}").status_code == 404


@pytest.mark.parametrize("token", ["", "made-up", "x" * 500, "a\u00e9"])
def test_a_wrong_share_token_is_404_and_grants_nothing(client, db, private_stream, token):
    reply = client.get(f"/watch/{private_stream.public_id}", query_string={"share": token})
    assert reply.status_code == 404
    assert client.get(f"/watch/{private_stream.public_id}").status_code == 404


def test_a_share_link_of_another_stream_does_not_open_this_one(client, db, make_stream, owner):
    first = make_stream(owner, "First")
    second = make_stream(owner, "Second")
    for stream in (first, second):
        access.set_visibility(db.session, stream, "private")
    link = access.create_share_link(db.session, first)
    db.session.commit()
    assert client.get(f"/watch/{second.public_id}?share={link.token}").status_code == 404
    client.get(f"/watch/{first.public_id}?share={link.token}")
    assert client.get(f"/watch/{first.public_id}").status_code == 200
    assert client.get(f"/watch/{second.public_id}").status_code == 404


def test_private_page_link_preview_reveals_nothing(client, auth, db, private_stream):
    """Even through a share link (as a link-preview bot would open it), the
    Open Graph / Twitter tags of a private stream name no title and no image."""
    private_stream.thumbnail_at = private_stream.created_at
    db.session.commit()
    auth.login("owner@example.com")
    html = client.get(f"/watch/{private_stream.public_id}").get_data(as_text=True)
    head = html.split("</head>", 1)[0]
    assert '<meta property="og:title" content="Live Studio">' in head
    assert "<title>Private stream · Live Studio</title>" in head
    assert "Secret show" not in head
    assert "og:image" not in head and "twitter:image" not in head
    assert "og:description" not in head and "og:url" not in head
    assert 'content="noindex, nofollow"' in head


def test_unlisted_stream_plays_for_anyone_but_is_never_listed(client, db, make_stream, owner):
    listed = make_stream(owner, "Listed show")
    unlisted = make_stream(owner, "Unlisted show")
    private = make_stream(owner, "Private show")
    access.set_visibility(db.session, unlisted, "unlisted")
    access.set_visibility(db.session, private, "private")
    db.session.commit()
    for stream in (listed, unlisted, private):
        stream.status = "live"
        add_broadcast(db, stream, ended=False)
        add_broadcast(db, stream, ended=True, replay=True)
    db.session.commit()
    home = client.get("/").get_data(as_text=True)
    assert "Listed show" in home
    assert "Unlisted show" not in home and unlisted.public_id not in home
    assert "Private show" not in home and private.public_id not in home
    page = client.get(f"/watch/{unlisted.public_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"{CDN}/live/{unlisted.public_id}/index.m3u8" in html  # no signature needed
    assert 'content="noindex, nofollow"' in html
    assert not cdn_cookie(page)


def test_visibility_form_on_the_stream_page(client, auth, db, owner, make_stream):
    """The creator picks who can watch; a bad value is refused with a message
    and changes nothing; share links are created and revoked from the page."""
    stream = make_stream(owner, "Form show")
    auth.login("owner@example.com")
    page = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert 'data-testid="visibility-public"' in page and "checked" in page
    token = auth.form_token(f"/streams/{stream.public_id}")
    for bad in ("secret", "", "private\u0000", "x" * 10_000):
        reply = client.post(
            f"/streams/{stream.public_id}/visibility", data={"visibility": bad, "csrf_token": token}
        )
        assert reply.status_code == 400, bad
        if "\u0000" not in bad:  # the input guard refuses NUL before the form
            assert "Choose public, unlisted or private." in reply.get_data(as_text=True)
        db.session.refresh(stream)
        assert stream.visibility == "public"
    reply = client.post(
        f"/streams/{stream.public_id}/visibility",
        data={"visibility": "private", "csrf_token": token},
    )
    assert reply.status_code == 302
    db.session.refresh(stream)
    assert stream.visibility == "private"

    reply = client.post(f"/streams/{stream.public_id}/share-links", data={"csrf_token": token})
    assert reply.status_code == 302
    (link,) = access.list_share_links(db.session, stream)
    page = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert f"/watch/{stream.public_id}?share={link.token}" in page
    reply = client.post(
        f"/streams/{stream.public_id}/share-links/{link.id}/revoke", data={"csrf_token": token}
    )
    assert reply.status_code == 302
    assert access.list_share_links(db.session, stream) == []
    assert (
        client.post(
            f"/streams/{stream.public_id}/share-links/{link.id}/revoke", data={"csrf_token": token}
        ).status_code
        == 404
    )


def test_someone_elses_share_links_cannot_be_touched(db, private_stream, stranger):
    link = access.create_share_link(db.session, private_stream)
    db.session.commit()
    page = stranger.get("/streams").get_data(as_text=True)
    from tests.conftest import csrf_token

    token = csrf_token(page)
    public_id = private_stream.public_id
    for path in (
        f"/streams/{public_id}/share-links",
        f"/streams/{public_id}/share-links/{link.id}/revoke",
        f"/streams/{public_id}/visibility",
    ):
        reply = stranger.post(path, data={"csrf_token": token, "visibility": "public"})
        assert (path, reply.status_code) == (path, 404)
    assert access.list_share_links(db.session, private_stream) == [link]
    assert db.session.get(Stream, private_stream.id).visibility == "private"


def test_a_share_link_opened_before_the_stream_went_private_still_works(
    client, db, make_stream, owner
):
    stream = make_stream(owner, "Soon private")
    link = access.create_share_link(db.session, stream)
    db.session.commit()
    assert client.get(f"/watch/{stream.public_id}?share={link.token}").status_code == 302
    access.set_visibility(db.session, stream, "private")
    db.session.commit()
    assert client.get(f"/watch/{stream.public_id}").status_code == 200


def test_access_of_a_public_stream_needs_no_cookie(client, make_stream):
    stream = make_stream()
    reply = client.get(f"/watch/{stream.public_id}/access")
    assert reply.status_code == 200
    assert reply.get_json() == {
        "hls_url": f"{CDN}/live/{stream.public_id}/index.m3u8",
        "private": False,
    }
    assert not cdn_cookie(reply)


def test_without_a_signing_key_private_playback_says_so(
    client, auth, private_stream, app, monkeypatch
):
    monkeypatch.setitem(app.config, "CDN_SIGNING_KEY", "")
    auth.login("owner@example.com")
    reply = client.get(f"/watch/{private_stream.public_id}/access")
    assert reply.status_code == 503
    assert "not configured" in reply.get_json()["error"]
    page = client.get(f"/watch/{private_stream.public_id}")
    assert page.status_code == 200 and not cdn_cookie(page)
