"""A real gunicorn (gthread workers, as in production) serving the test
database and Redis, for websocket tests that need a real server."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from devtools import stack
from tests.conftest import PASSWORD, ROOT, VAR, csrf_token


@contextlib.contextmanager
def run_gunicorn(app, services) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn (with the project's gunicorn.conf.py hooks) on a free port;
    yields its base URL and process. The media server's control port is
    closed, so ingest stats fail the way an unreachable engine does."""
    port = stack.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "live-test-secret",
        "STUDIO_HOOK_TOKEN": app.config["HOOK_TOKEN"],
        "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
        "STUDIO_LOG_LEVEL": "WARNING",
    }
    log_path = VAR / "logs" / f"gunicorn-live-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app",
             "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", "1",
             "--threads", "8", "--graceful-timeout", "20"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        stack.wait_for_port("127.0.0.1", port, 20, process, log_path)
        yield f"http://127.0.0.1:{port}", process
    finally:
        stack.terminate(process, signal.SIGTERM, timeout=25)


@pytest.fixture(scope="module")
def live_server(app, services):
    """A gunicorn serving the test database and Redis; yields its base URL."""
    with run_gunicorn(app, services) as (url, _process):
        yield url


def login(base_url: str, email: str) -> requests.Session:
    """A requests session logged in through the real login page."""
    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=5).text
    reply = session.post(
        f"{base_url}/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(page)},
        timeout=5,
        allow_redirects=False,
    )
    assert reply.status_code in (302, 303), reply.text
    return session


def browser_headers(session: requests.Session) -> dict[str, str]:
    """The headers a browser sends on the socket upgrade: its cookies, and its
    User-Agent (Flask-Login's strong session protection checks it)."""
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return {"Cookie": cookies, "User-Agent": session.headers["User-Agent"]}


def ws_url(base_url: str, public_id: str) -> str:
    return re.sub(r"^http", "ws", base_url) + f"/ws/streams/{public_id}"
