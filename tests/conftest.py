"""Shared fixtures: a real PostgreSQL database (fresh schema per run) and a
private Redis, the app, a test client, an `auth` helper and factories."""

from __future__ import annotations

import itertools
import json
import re
import secrets
from pathlib import Path

import pytest
import redis as redis_lib
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from devtools.services import create_database, ensure_postgres, start_redis
from studio import config as studio_config
from studio import create_app
from studio.auth import service as accounts
from studio.extensions import db as _db
from studio.streams import service as streams
from tests.stack import drop_database

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "srs5"  # recorded from a real SRS 5.0.216
VAR = ROOT / "var" / "test"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def services():
    """PostgreSQL (a throwaway database) and a private Redis for this test run."""
    VAR.mkdir(parents=True, exist_ok=True)
    postgres = ensure_postgres(VAR, database="postgres")
    name = f"studio_test_{secrets.token_hex(4)}"
    create_database(postgres.url, name)
    redis_service = start_redis(VAR)
    database_url = postgres.url.rsplit("/", 1)[0] + "/" + name
    yield {"database_url": database_url, "redis_url": redis_service.url}
    redis_service.stop()
    drop_database(postgres.url, name)


@pytest.fixture(scope="session")
def app(services):
    app = create_app(
        studio_config.testing(
            {
                "SQLALCHEMY_DATABASE_URI": studio_config.sqlalchemy_url(services["database_url"]),
                "REDIS_URL": services["redis_url"],
                "PUBLIC_URL": "https://studio.test",
                "RTMP_URL": "rtmp://ingest.studio.test/live",
                "WEBRTC_ORIGIN": "https://studio.test",
                "WEBRTC_HOST": "studio.test",
                "CDN_URL": "https://cdn.studio.test",
                # No media server in unit tests: drops go to a closed port and fail fast.
                "NGINX_CONTROL_URL": "http://127.0.0.1:9",
                "SRS_API_URL": "http://127.0.0.1:9",
            }
        )
    )
    with app.app_context():
        upgrade()
    return app


@pytest.fixture()
def db(app):
    """The database session, inside an app context; every table emptied afterwards."""
    with app.app_context():
        yield _db
        _db.session.rollback()
        tables = ", ".join(t.name for t in _db.metadata.sorted_tables)
        for attempt in range(3):
            try:
                _db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                _db.session.commit()
                break
            except OperationalError:
                # A studio process of an end-to-end test may still be reading
                # these tables: PostgreSQL picks one side of the deadlock.
                _db.session.rollback()
                if attempt == 2:
                    raise


@pytest.fixture()
def redis(app, db):
    client = redis_lib.Redis.from_url(app.config["REDIS_URL"])
    # Empty at the start too: tests without this fixture (deleting a stream
    # queues a purge job) may have left keys behind.
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture()
def client(app, db):
    return app.test_client()


_emails = itertools.count(1)


@pytest.fixture()
def use_engine(app, monkeypatch):
    """Run the app on another media engine until the test ends (production
    chooses it once, at start-up): `use_engine("srs", SRS_API_URL=...)`."""
    from studio.media import engines

    def use(name: str, **config) -> None:
        for key, value in {"MEDIA_ENGINE": name, **config}.items():
            monkeypatch.setitem(app.config, key, value)
        monkeypatch.setitem(app.extensions, engines.EXTENSION, engines.build(app.config))

    return use


@pytest.fixture()
def make_user(db):
    def factory(email: str | None = None, password: str = PASSWORD):
        user = accounts.create_user(
            db.session, email or f"creator{next(_emails)}@example.com", password
        )
        db.session.commit()
        return user

    return factory


@pytest.fixture()
def make_stream(db, make_user):
    # Window 0: an unpublish ends the broadcast at once (tests of the reconnect
    # window ask for one).
    def factory(owner=None, title: str = "My stream", reconnect_window: int = 0):
        stream = streams.create_stream(db.session, owner or make_user(), title, reconnect_window)
        db.session.commit()
        return stream

    return factory


@pytest.fixture()
def make_token(db):
    def factory(user) -> str:
        _, token = accounts.create_api_token(db.session, user, "test")
        db.session.commit()
        return token

    return factory


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "page has no CSRF token"
    return match.group(1)


class Auth:
    """Log a test client in and out through the real pages."""

    def __init__(self, client):
        self.client = client

    def login(self, email: str, password: str = PASSWORD):
        page = self.client.get("/login").get_data(as_text=True)
        return self.client.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": csrf_token(page)},
        )

    def logout(self):
        page = self.client.get("/").get_data(as_text=True)
        return self.client.post("/logout", data={"csrf_token": csrf_token(page)})

    def form_token(self, path: str = "/") -> str:
        return csrf_token(self.client.get(path).get_data(as_text=True))


@pytest.fixture()
def auth(client):
    return Auth(client)


def load_fixture(name: str) -> dict:
    """A body recorded from a real SRS 5.0.216 (tests/fixtures/srs5/)."""
    return json.loads((FIXTURES / name).read_text())
