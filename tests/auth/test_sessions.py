"""Logging out ends the session for good: the session cookie, copied
before logout, no longer logs anyone in afterwards.

The browsers here talk to an app of their own on the test database and
Redis: each request then gets its own app context, as under gunicorn (the
shared `app` runs requests inside the `db` fixture's context, where a user
loaded by one request would be seen by the next)."""

from __future__ import annotations

import pytest

from studio import config as studio_config
from studio import create_app
from tests.conftest import Auth


@pytest.fixture(scope="module")
def studio(app):
    return create_app(
        studio_config.testing(
            {
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "REDIS_URL": app.config["REDIS_URL"],
            }
        )
    )


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    return cookie.value


def replay(studio, cookie: str):
    """A fresh browser that only has the copied cookie asks for a page that
    needs a login."""
    other = studio.test_client()
    other.set_cookie("session", cookie)
    return other.get("/tokens")


@pytest.fixture()
def creator(db, redis, make_user):
    return make_user()


@pytest.fixture()
def creator_browser(studio, creator):
    """A browser in which the creator is logged in."""
    browser = studio.test_client()
    assert Auth(browser).login(creator.email).status_code == 302
    return browser


def test_copied_cookie_works_until_logout_then_never(studio, creator_browser):
    """The copy works while the session lasts; after logout it is refused."""
    copied = session_cookie(creator_browser)
    assert replay(studio, copied).status_code == 200

    assert Auth(creator_browser).logout().status_code == 302

    refused = replay(studio, copied)
    assert refused.status_code == 302
    assert "/login" in refused.headers["Location"]
    assert creator_browser.get("/tokens").status_code == 302  # the one that logged out too


def test_logout_ends_only_that_session(studio, creator_browser, creator):
    """Logging out in one browser leaves the creator's other logins alone."""
    other = studio.test_client()
    assert Auth(other).login(creator.email).status_code == 302

    Auth(creator_browser).logout()

    assert other.get("/tokens").status_code == 200
    assert creator_browser.get("/tokens").status_code == 302


def test_a_session_unknown_to_the_server_is_not_logged_in(studio, creator_browser, redis):
    """A signed cookie whose server-side record is gone (expired) is anonymous."""
    copied = session_cookie(creator_browser)
    redis.flushdb()

    assert replay(studio, copied).status_code == 302
