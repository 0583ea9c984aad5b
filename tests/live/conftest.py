"""A real gunicorn serving the test database and Redis, for websocket tests
that need a real server: the socket tier (gunicorn_sockets.conf.py, gevent
workers), where production runs the `/ws/` routes."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
from collections.abc import Iterator

import pytest
import requests
import simple_websocket
from werkzeug.serving import make_server

from devtools.process import free_port
from studio.live.hub import get_hub
from tests import stack
from tests.conftest import VAR
from tests.e2e.golive.harness import cookie_header


class Client(simple_websocket.Client):
    """simple-websocket's client, also handling the frames that arrive in the
    same read as the handshake's response. The stock client leaves those in
    its parser until more bytes come, and loses them when the next read is
    the end of the connection: a server that accepts and closes at once (a
    refusal with its close code) looked like a close without a status."""

    def handshake(self):
        super().handshake()
        self._handle_events()
        # Still "connected" for the constructor; a close handled above has
        # set close_reason, which receive() reports once the reader sees EOF.
        self.connected = True


@contextlib.contextmanager
def run_gunicorn(
    app, services, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """The socket tier (gunicorn_sockets.conf.py and its hooks) on a free
    port, with `extra_env` settings; yields its base URL and process. The
    media server's control port is closed, so ingest stats fail the way an
    unreachable engine does."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "live-test-secret",
        "STUDIO_HOOK_TOKEN": app.config["HOOK_TOKEN"],
        "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
        "STUDIO_LOG_LEVEL": "WARNING",
        # Many sockets come from 127.0.0.1 here; the join limit has its own test.
        "STUDIO_CHAT_JOIN_RATE_ADDRESS": "100000 per minute",
        **(extra_env or {}),
    }
    with stack.start_gunicorn(
        env, VAR, port, workers=1, graceful_timeout=20, name=f"sockets-live-{port}", tier="sockets"
    ) as sockets:
        yield sockets.base_url, sockets.process


@pytest.fixture(scope="module")
def live_server(app, services):
    """A gunicorn serving the test database and Redis; yields its base URL."""
    with run_gunicorn(app, services) as (url, _process):
        yield url


@pytest.fixture()
def threaded_server(app):
    """The test app on werkzeug's threaded server, in this process, so the
    hub and the threads can be inspected."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    get_hub(app).stop()


def browser_headers(session: requests.Session) -> dict[str, str]:
    """The headers a browser sends on the socket upgrade: its cookies, and its
    User-Agent (Flask-Login's strong session protection checks it)."""
    return {"Cookie": cookie_header(session), "User-Agent": session.headers["User-Agent"]}


def ws_url(base_url: str, public_id: str) -> str:
    return re.sub(r"^http", "ws", base_url) + f"/ws/streams/{public_id}"
