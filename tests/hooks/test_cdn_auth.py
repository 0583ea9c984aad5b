"""The development and test edge's check of a private object
(`/hooks/cdn-auth`, reached by nginx `auth_request`)."""

from __future__ import annotations

import time

import pytest

from studio.storage import signing

TOKEN = "test-hook-token"


@pytest.fixture()
def client(app, db):
    """As nginx calls it: the Cookie header as given (no cookie jar of its own)."""
    return app.test_client(use_cookies=False)


def ask(client, path: str, cookie: str | None, token: str = TOKEN):
    headers = {"X-Original-URI": path}
    if cookie is not None:
        headers["Cookie"] = cookie
    return client.get(f"/hooks/cdn-auth?token={token}", headers=headers)


def cookie_for(app, prefix: str, expires: float) -> str:
    key = signing.SigningKey.from_config(app.config)
    return f"{signing.COOKIE_NAME}={signing.cookie_value(key, prefix, int(expires))}"


def test_a_valid_cookie_for_the_folder_is_let_through(app, client):
    cookie = cookie_for(app, "https://cdn.studio.test/private/abc/", time.time() + 60)
    for path in ("/private/abc/index.m3u8", "/private/abc/3/1.ts", "/private/abc/thumbnail.jpg"):
        assert ask(client, path, cookie).status_code == 204
    # Among other cookies, and among CDN cookies of other folders.
    other = cookie_for(app, "https://cdn.studio.test/private/zzz/", time.time() + 60)
    assert ask(client, "/private/abc/index.m3u8", f"a=b; {other}; {cookie}").status_code == 204


@pytest.mark.parametrize(
    "path, prefix, expires_in",
    [
        ("/private/abc/index.m3u8", None, 60),  # no cookie
        ("/private/abc/index.m3u8", "https://cdn.studio.test/private/abc/", -1),  # expired
        ("/private/abd/index.m3u8", "https://cdn.studio.test/private/abc/", 60),  # other stream
        ("/private/abc/index.m3u8", "https://evil.test/private/abc/", 60),  # other host
        ("/private/abc/../abd/x.ts", "https://cdn.studio.test/private/abc/", 60),
        ("/live/abc/index.m3u8", "https://cdn.studio.test/live/abc/", 60),  # not private
    ],
)
def test_anything_else_is_403(app, client, path, prefix, expires_in):
    cookie = cookie_for(app, prefix, time.time() + expires_in) if prefix else None
    assert ask(client, path, cookie).status_code == 403


def test_a_tampered_cookie_is_403(app, client):
    cookie = cookie_for(app, "https://cdn.studio.test/private/abc/", time.time() + 60)
    forged = cookie.replace("Expires=", "Expires=1")
    assert ask(client, "/private/abc/index.m3u8", forged).status_code == 403


def test_without_the_hook_token_nothing_is_let_through(app, client):
    cookie = cookie_for(app, "https://cdn.studio.test/private/abc/", time.time() + 60)
    assert ask(client, "/private/abc/index.m3u8", cookie, token="wrong").status_code == 403
