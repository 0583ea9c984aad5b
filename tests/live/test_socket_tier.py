"""The studio shaped as in production: nginx in front, websockets on the
socket tier (gunicorn gevent), pages and media-server callbacks on the web
tier (gunicorn gthread). Viewers' sockets cannot take the threads callbacks
and pages need, and nginx caps the sockets one address may hold."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
from collections.abc import Iterator

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from devtools.nginx import FrontSite, start_nginx
from devtools.process import free_port
from tests import stack
from tests.conftest import VAR, load_fixture
from tests.polling import wait_until

pytestmark = pytest.mark.e2e

# A deliberately small web tier: the sockets below outnumber its threads.
WEB_THREADS = 4
PER_ADDRESS = 30
# Generous: far above a normal answer (milliseconds), far below the failure
# mode (no answer until a socket lets go of its thread, i.e. never).
ANSWER_WITHIN = 20


@pytest.fixture(scope="module")
def front(app, services) -> Iterator[str]:
    """nginx's front site over both tiers; yields its base URL."""
    var_dir = VAR / "socket-tier"
    web_port, sockets_port = free_port(), free_port()
    site = FrontSite(
        port=free_port(),
        web_url=f"http://127.0.0.1:{web_port}",
        sockets_url=f"http://127.0.0.1:{sockets_port}",
        ws_per_address=PER_ADDRESS,
    )
    base = f"http://127.0.0.1:{site.port}"
    env = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "socket-tier-secret",
        "STUDIO_HOOK_TOKEN": app.config["HOOK_TOKEN"],
        "STUDIO_PUBLIC_URL": base,
        "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
        "STUDIO_LOG_LEVEL": "WARNING",
        # Every socket here comes from 127.0.0.1: nginx's cap is what is tested.
        "STUDIO_CHAT_JOIN_RATE_ADDRESS": "100000 per minute",
    }
    nginx = start_nginx(
        var_dir,
        hook_url=f"{site.web_url}/hooks/nginx-rtmp?token=unused",
        gcs_url="http://127.0.0.1:9",
        hls_dir=var_dir / f"hls-{site.port}",
        front=site,
    )
    try:
        with (
            stack.start_gunicorn(env, var_dir, web_port, workers=1, threads=WEB_THREADS),
            stack.start_gunicorn(env, var_dir, sockets_port, tier="sockets"),
        ):
            yield base
    finally:
        nginx.stop()


@pytest.fixture()
def viewers(front) -> Iterator:
    """open(public_id) -> a websocket on /ws/streams/<id> through nginx; all
    are closed after the test."""
    with contextlib.ExitStack() as opened:

        def open_socket(public_id: str) -> ClientConnection:
            url = re.sub(r"^http", "ws", front) + f"/ws/streams/{public_id}"
            return opened.enter_context(
                connect(url, proxy=None, open_timeout=ANSWER_WITHIN, ping_interval=None)
            )

        yield open_socket


def next_status(socket: ClientConnection) -> str:
    """The status of the next status event on `socket`."""
    while True:
        event = json.loads(socket.recv(timeout=ANSWER_WITHIN))
        if event["type"] == "status":
            return event["status"]


def went_live(socket: ClientConnection) -> bool:
    """A status event saying "live" arrives (a resync may repeat "created" first)."""
    while next_status(socket) != "live":
        pass
    return True


def test_callbacks_and_pages_answer_while_sockets_outnumber_the_web_threads(
    front, viewers, make_stream, app
):
    """Five times more watch-page sockets than the web tier has threads: SRS's
    on_publish is still accepted, the watch page still loads, and every
    viewer is told the stream went live."""
    stream = make_stream()
    sockets = [viewers(stream.public_id) for _ in range(WEB_THREADS * 5)]
    assert {next_status(socket) for socket in sockets} == {"created"}

    callback = {
        **load_fixture("on_publish.json"),
        "stream": stream.public_id,
        "param": f"?secret={stream.stream_key}",
    }
    reply = requests.post(
        f"{front}/hooks/srs?token={app.config['HOOK_TOKEN']}", json=callback, timeout=ANSWER_WITHIN
    )
    assert reply.status_code == 200 and reply.json()["code"] == 0, reply.text
    page = requests.get(f"{front}/watch/{stream.public_id}", timeout=ANSWER_WITHIN)
    assert page.status_code == 200
    assert all(went_live(socket) for socket in sockets)


def test_sockets_over_the_per_address_limit_are_closed_with_try_again_later(
    front, viewers, make_stream
):
    """One address holds at most PER_ADDRESS sockets: the next one is closed
    at once with 1013 and a reason (not left hanging); once one of the
    address's sockets closes, a new one gets in again."""
    stream = make_stream()
    held = [viewers(stream.public_id) for _ in range(PER_ADDRESS)]
    assert {next_status(socket) for socket in held} == {"created"}

    refused = viewers(stream.public_id)
    with pytest.raises(ConnectionClosed) as closed:
        refused.recv(timeout=ANSWER_WITHIN)
    assert closed.value.rcvd.code == 1013
    assert "Too many connections" in closed.value.rcvd.reason

    held.pop().close()
    wait_until(lambda: _admitted(viewers, stream.public_id), ANSWER_WITHIN, "a socket admitted")


def _admitted(viewers, public_id: str) -> bool:
    """A new socket gets the stream's status (not the limit's close)."""
    with contextlib.suppress(ConnectionClosed, InvalidStatus):
        return next_status(viewers(public_id)) == "created"
    return False


def test_what_nginx_refuses_for_the_api_is_json(front):
    """As in production (tests/deploy/test_nginx_conf.py): a path nginx
    cannot read is answered, for /api/, in the API's JSON error shape."""
    host, port = front.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=ANSWER_WITHIN)
    try:
        connection.request("GET", "/api/v1/streams/%00")
        reply = connection.getresponse()
        assert reply.status == 400
        assert reply.getheader("Content-Type") == "application/json"
        assert json.loads(reply.read())["fields"] == {}
    finally:
        connection.close()
