"""Rate limits (Flask-Limiter on Redis), security headers, secure cookies.

The shared test app runs without limits (tests log in far more often than a
person); these tests build apps on the same database and Redis with small
limits switched on.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event

from studio import config as studio_config
from studio import create_app
from studio.extensions import db as _db
from studio.security import content_security_policy
from tests.conftest import PASSWORD, csrf_token, load_fixture


def limited_app(app, **overrides):
    config = studio_config.testing(
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
            "PUBLIC_URL": "https://studio.test",
            "CDN_URL": "https://cdn.studio.test",
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_LOGIN": "3 per minute",
            "RATELIMIT_REGISTER": "2 per hour",
            "RATELIMIT_API": "5 per minute",
            **overrides,
        }
    )
    return create_app(config)


@pytest.fixture()
def limited(app, db, redis):
    """A client of an app with small limits; Redis (the counters) is emptied after."""
    return limited_app(app).test_client()


WRONG = "wrong password!"


def post_login(client, email: str, password: str = WRONG, headers=None, environ=None):
    options = {"headers": headers or {}, "environ_base": environ or {}}
    token = csrf_token(client.get("/login", **options).get_data(as_text=True))
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}, **options
    )


def test_login_limited_per_address_and_email(limited, make_user):
    """The 4th login attempt within a minute for one e-mail is refused with a
    429 page; another e-mail from the same address is still served."""
    user = make_user()
    for _ in range(3):
        assert post_login(limited, user.email).status_code == 400
    refused = post_login(limited, user.email, PASSWORD)  # even the right password
    assert refused.status_code == 429
    assert refused.mimetype == "text/html"
    assert "Too many login attempts" in refused.get_data(as_text=True)
    assert "Retry-After" in refused.headers
    assert post_login(limited, "someone.else@example.com").status_code == 400


def test_registration_limited_per_address(limited):
    """The 3rd registration from one address within the hour gets 429."""
    for n in range(2):
        token = csrf_token(limited.get("/register").get_data(as_text=True))
        reply = limited.post(
            "/register",
            data={
                "email": f"new{n}@example.com",
                "password": PASSWORD,
                "confirm": PASSWORD,
                "csrf_token": token,
            },
        )
        assert reply.status_code in (200, 302, 400)
        limited.post("/logout", data={"csrf_token": token})
    token = csrf_token(limited.get("/register").get_data(as_text=True))
    reply = limited.post(
        "/register", data={"email": "new9@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert reply.status_code == 429
    assert "Too many accounts" in reply.get_data(as_text=True)


def test_api_limited_per_token_with_a_json_429(limited, make_user, make_token):
    """A token's 6th call within the minute gets a JSON 429; another token is unaffected."""
    first, second = make_token(make_user()), make_token(make_user())
    for _ in range(5):
        reply = limited.get("/api/v1/streams", headers={"Authorization": f"Bearer {first}"})
        assert reply.status_code == 200
    refused = limited.get("/api/v1/streams", headers={"Authorization": f"Bearer {first}"})
    assert refused.status_code == 429
    assert refused.is_json and "Rate limit exceeded" in refused.get_json()["error"]
    other = limited.get("/api/v1/streams", headers={"Authorization": f"Bearer {second}"})
    assert other.status_code == 200


def test_api_replies_say_what_is_left_of_the_tokens_window(limited, make_user, make_token):
    """Every API reply carries the token's limit, what is left of it and when
    the window resets; the refusal past it says when to retry."""
    token = make_token(make_user())
    replies = [
        limited.get("/api/v1/streams", headers={"Authorization": f"Bearer {token}"})
        for _ in range(6)
    ]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies[:5]] == ["4", "3", "2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"5"}
    assert all(int(r.headers["X-RateLimit-Reset"]) > 0 for r in replies)
    assert replies[5].status_code == 429
    assert 1 <= int(replies[5].headers["Retry-After"]) <= 60


def test_a_stream_read_under_limits_shows_its_viewers_and_survives_lost_scripts(
    limited, redis, make_user, make_token, make_stream
):
    """With limits on, `GET /streams/{id}` still shows the stream's live
    viewers and the token's window; after Redis forgets its scripts (a
    restart, SCRIPT FLUSH) the next call is counted and served as before;
    another creator's stream stays a 404."""
    import time

    from studio import viewers

    owner = make_user()
    token = make_token(owner)
    stream, foreign = make_stream(owner), make_stream()
    now = time.time()
    redis.zadd(viewers.key(stream.public_id), {"socket-a": now, "socket-b": now})
    redis.zadd(viewers.key(stream.public_id), {"socket-gone": now - 3600})
    auth = {"Authorization": f"Bearer {token}"}
    first = limited.get(f"/api/v1/streams/{stream.public_id}", headers=auth)
    assert first.status_code == 200 and first.get_json()["viewers"] == 2
    assert first.headers["X-RateLimit-Remaining"] == "4"
    redis.script_flush()
    again = limited.get(f"/api/v1/streams/{stream.public_id}", headers=auth)
    assert again.status_code == 200 and again.get_json()["viewers"] == 2
    assert again.headers["X-RateLimit-Remaining"] == "3"
    other = limited.get(f"/api/v1/streams/{foreign.public_id}", headers=auth)
    assert other.status_code == 404 and "viewers" not in other.get_json()
    assert other.headers["X-RateLimit-Remaining"] == "2"


def test_failed_api_auth_limited_per_address_before_the_database(
    app, db, redis, make_user, make_token
):
    """Ever-new bogus tokens from one address: past the per-address limit on
    failed authentication the API answers a JSON 429 without a database query;
    a valid token from another address is still served."""
    limited = limited_app(app, RATELIMIT_API_AUTH_FAILURES="5 per minute")
    client = limited.test_client()
    with limited.app_context():
        engine = _db.engine
    token = make_token(make_user())
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        for n in range(5):
            reply = client.get("/api/v1/streams", headers=bearer(f"lst_bogus{n:04d}"))
            assert reply.status_code == 401
        assert statements, "the bogus tokens were looked up"
        statements.clear()
        for n in range(5, 40):
            refused = client.get("/api/v1/streams", headers=bearer(f"lst_bogus{n:04d}"))
            assert refused.status_code == 429
            assert refused.is_json and "invalid API token" in refused.get_json()["error"]
            assert "Retry-After" in refused.headers
        assert statements == []
        other = client.get(
            "/api/v1/streams", headers=bearer(token), environ_base={"REMOTE_ADDR": "192.0.2.7"}
        )
        assert other.status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_valid_tokens_do_not_count_as_failures(app, db, redis, make_user, make_token):
    """Successful calls never use up the failed-authentication allowance."""
    limited = limited_app(
        app, RATELIMIT_API_AUTH_FAILURES="2 per minute", RATELIMIT_API="50/minute"
    )
    client = limited.test_client()
    token = make_token(make_user())
    for _ in range(10):
        assert client.get("/api/v1/streams", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/streams", headers=bearer("lst_bogus")).status_code == 401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_spoofed_forwarded_for_from_a_non_proxy_peer_is_ignored(app, db, redis, make_user):
    """With a proxy hop configured, X-Forwarded-For from a peer that is not a
    trusted proxy does not change the address the login limit counts: a new
    forged address per attempt still hits the per-address limit."""
    client = limited_app(app, PROXY_HOPS=1, TRUSTED_PROXIES=["127.0.0.1"]).test_client()
    user = make_user()
    direct = {"REMOTE_ADDR": "203.0.113.9"}
    for n in range(3):
        forged = {"X-Forwarded-For": f"198.51.100.{n}"}
        reply = post_login(client, user.email, headers=forged, environ=direct)
        assert reply.status_code == 400
    refused = post_login(
        client, user.email, headers={"X-Forwarded-For": "198.51.100.77"}, environ=direct
    )
    assert refused.status_code == 429


def test_forwarded_for_from_the_trusted_proxy_names_the_client(app, db, redis, make_user):
    """Through the trusted proxy each client is counted by its own address:
    three clients behind nginx do not share one login allowance."""
    client = limited_app(
        app, PROXY_HOPS=1, TRUSTED_PROXIES=["10.1.0.0/16"], RATELIMIT_LOGIN="1 per minute"
    ).test_client()
    user = make_user()
    proxy = {"REMOTE_ADDR": "10.1.2.3"}
    for n in range(3):
        client_address = {"X-Forwarded-For": f"198.51.100.{n}"}
        reply = post_login(client, user.email, headers=client_address, environ=proxy)
        assert reply.status_code == 400
    again = post_login(
        client, user.email, headers={"X-Forwarded-For": "198.51.100.0"}, environ=proxy
    )
    assert again.status_code == 429


def test_a_trusted_proxy_that_is_not_an_address_stops_the_start(app):
    """A host name (or typo) in STUDIO_TRUSTED_PROXIES is refused at start,
    naming the value, rather than trusting nobody or everybody."""
    with pytest.raises(ValueError, match="STUDIO_TRUSTED_PROXIES: 'nginx'"):
        limited_app(app, PROXY_HOPS=1, TRUSTED_PROXIES=["10.0.0.0/8", "nginx"])


def test_callbacks_never_limited_even_under_a_burst(app, db, redis, make_stream):
    """With a default limit of 2 per minute on every route, a burst of 60 SRS
    callbacks, probes and scrapes is all answered; a page is limited."""
    client = limited_app(app, RATELIMIT_DEFAULT="2 per minute").test_client()
    stream = make_stream()
    publish = {
        **load_fixture("on_publish.json"),
        "stream": stream.public_id,
        "param": f"?secret={stream.stream_key}",
    }
    unpublish = {**load_fixture("on_unpublish.json"), "stream": stream.public_id}
    for n in range(30):
        for body in (publish, unpublish):
            body = {**body, "client_id": f"burst{n:04d}"}
            reply = client.post(
                "/hooks/srs?token=test-hook-token",
                data=json.dumps(body),
                content_type="application/json",
            )
            assert reply.status_code == 200 and reply.get_json() == {"code": 0}, reply.data
    for path in ("/healthz", "/readyz", "/metrics") * 5:
        assert client.get(path).status_code == 200, path
    pages = [client.get("/login").status_code for _ in range(3)]
    assert pages == [200, 200, 429]


def test_security_headers_on_every_response(app, client, make_user, make_token):
    """Pages, JSON, errors, callbacks and static files all carry the CSP
    (no inline script; CDN for media and fetches; never framed) and friends."""
    token = make_token(make_user())
    responses = [
        client.get("/login"),
        client.get("/api/v1/streams", headers={"Authorization": f"Bearer {token}"}),
        client.get("/no/such/page"),
        client.post("/hooks/srs?token=wrong", json={}),
        client.get("/static/css/studio.css"),
    ]
    expected = content_security_policy(app)
    for reply in responses:
        assert reply.headers["Content-Security-Policy"] == expected, reply.request.path
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert reply.headers["X-Frame-Options"] == "DENY"


def test_csp_directives():
    """The policy allows script and style only from the studio, media from the
    CDN and blob: (hls.js), fetches to the CDN and websockets, no framing."""
    app = create_app(studio_config.testing({"CDN_URL": "https://cdn.example.net/media"}))
    directives = dict(
        part.strip().split(" ", 1) for part in content_security_policy(app).split(";")
    )
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["media-src"] == "'self' blob: https://cdn.example.net"
    assert directives["img-src"] == "'self' data: https://cdn.example.net"  # thumbnails
    assert directives["connect-src"].startswith("'self' https://cdn.example.net")
    assert "wss:" in directives["connect-src"] and "ws:" in directives["connect-src"]
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in content_security_policy(app)


def test_cookies_secure_when_the_public_url_is_https():
    """STUDIO_PUBLIC_URL https:// makes session and remember cookies Secure;
    http:// does not; STUDIO_SECURE_COOKIES overrides either way."""
    https = studio_config.from_environ({"STUDIO_PUBLIC_URL": "https://studio.example.com"})
    http = studio_config.from_environ({"STUDIO_PUBLIC_URL": "http://127.0.0.1:5000"})
    forced = studio_config.from_environ(
        {"STUDIO_PUBLIC_URL": "http://127.0.0.1:5000", "STUDIO_SECURE_COOKIES": "1"}
    )
    assert https["SESSION_COOKIE_SECURE"] and https["REMEMBER_COOKIE_SECURE"]
    assert not http["SESSION_COOKIE_SECURE"]
    assert forced["SESSION_COOKIE_SECURE"]


def test_login_cookie_carries_secure_httponly_samesite(app, db, redis, make_user):
    """A real login on an https deployment sets a Secure, HttpOnly, SameSite=Lax session cookie."""
    secure = limited_app(app, SESSION_COOKIE_SECURE=True, RATELIMIT_ENABLED=False)
    client = secure.test_client()
    user = make_user()
    reply = post_login(client, user.email, PASSWORD)
    assert reply.status_code == 302
    cookie = reply.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_still_served_when_the_limit_store_is_down(app, db, make_user):
    """Redis unreachable: login attempts are served without limits rather than
    refused (no 429); the right password gets a clear 503, since the session
    it would start cannot be recorded (logout could not end it)."""
    client = limited_app(app, REDIS_URL="redis://127.0.0.1:9/0").test_client()
    user = make_user()
    for _ in range(5):
        assert post_login(client, user.email).status_code == 400
    reply = post_login(client, user.email, PASSWORD)
    assert reply.status_code == 503
    assert "Logging in is unavailable right now" in reply.get_data(as_text=True)
    assert client.get("/tokens").status_code == 302  # not logged in


def test_flask_limiter_checks_only_what_it_may_limit(app, db, redis):
    """Flask-Limiter's per-request check is replaced by one that skips the
    blueprints it exempts (API, callbacks, probes); the login page keeps it."""
    limited = limited_app(app)
    limiter = limited.extensions["studio_limiter"]
    hooks = limited.before_request_funcs[None]
    assert limiter._check_request_limit not in hooks
    assert any(getattr(hook, "__name__", "") == "check_unless_exempt" for hook in hooks)
    client = limited.test_client()
    for _ in range(3):
        post_login(client, "nobody@example.com")
    assert post_login(client, "nobody@example.com").status_code == 429


def test_turn_credentials_limited_per_address_across_both_pages(
    app, db, redis, make_user, make_stream
):
    """Each ice-servers answer is a relay credential: an address gets at most
    RATELIMIT_ICE of them a minute, watch and go-live pages together; another
    address is still served."""
    client = limited_app(app, RATELIMIT_ICE="2 per minute").test_client()
    owner = make_user()
    stream = make_stream(owner=owner)
    assert post_login(client, owner.email, PASSWORD).status_code == 302
    watch, golive = (f"/{page}/{stream.public_id}/ice-servers" for page in ("watch", "streams"))
    assert client.get(golive).status_code == 200
    # Answered (404 here: no WebRTC playback on nginx-rtmp), and counted.
    assert client.get(watch).status_code == 404
    assert client.get(watch).status_code == 429
    assert client.get(golive).status_code == 429
    other = {"REMOTE_ADDR": "198.51.100.20"}
    assert client.get(watch, environ_base=other).status_code == 404
