"""Live viewer counts against two real socket-tier servers (gunicorn, gevent)
sharing the test Redis and PostgreSQL: the count every process sees, the
`viewers` events pushed to pages, the API's `viewers`, the expiry of a killed
process's sockets and the peak recorded on the broadcast."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from studio.models import Broadcast
from tests.api.helpers import Api
from tests.e2e.golive.harness import login
from tests.live.conftest import browser_headers, run_gunicorn, ws_url
from tests.live.test_websocket import publish, sockets  # noqa: F401 (a fixture)
from tests.polling import wait_until

# Short enough for a test, long enough for a busy machine's scheduling.
EXPIRY = 6.0
SETTINGS = {
    "STUDIO_VIEWER_HEARTBEAT": "1",
    "STUDIO_VIEWER_EXPIRY": str(EXPIRY),
    "STUDIO_VIEWER_PUSH_INTERVAL": "0.5",
}


@pytest.fixture(scope="module")
def servers(app, services):
    """Two socket tiers, as two machines (or two workers) would be."""
    with (
        run_gunicorn(app, services, SETTINGS) as first,
        run_gunicorn(app, services, SETTINGS) as second,
    ):
        yield first, second


@pytest.fixture()
def short_expiry(app, monkeypatch):
    """The reading side (API, pages) with the servers' expiry."""
    monkeypatch.setitem(app.config, "VIEWER_EXPIRY", EXPIRY)


def api_viewers(api: Api, public_id: str) -> int:
    reply = api.get(f"/streams/{public_id}")
    assert reply.status_code == 200
    return reply.get_json()["viewers"]


def viewers_event(count: int):
    return lambda event: event["type"] == "viewers" and event["viewers"] == count


def worker_pid(master: int) -> int:
    """The one gunicorn worker of a master (workers=1)."""
    (child,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(child)


def test_viewers_on_every_process_are_counted_pushed_and_fall_when_they_leave(
    servers,
    short_expiry,
    client,
    make_user,
    make_stream,
    make_token,
    sockets,  # noqa: F811
):
    """Three viewers on two processes are three in the API and in the event
    every socket receives (the owner's socket is not counted but is told);
    as they close, the count falls for everyone."""
    (first_url, _), (second_url, _) = servers
    owner = make_user()
    stream = make_stream(owner)
    api = Api(client, make_token(owner))
    assert api_viewers(api, stream.public_id) == 0

    owner_socket = sockets(
        ws_url(first_url, stream.public_id), browser_headers(login(first_url, owner.email))
    )
    owner_socket.next(viewers_event(0))
    a = sockets(ws_url(first_url, stream.public_id))
    b = sockets(ws_url(second_url, stream.public_id))
    c = sockets(ws_url(second_url, stream.public_id))

    wait_until(lambda: api_viewers(api, stream.public_id) == 3, what="3 viewers in the API")
    for socket in (owner_socket, a, b, c):
        socket.next(viewers_event(3))

    c.close()
    b.close()
    wait_until(lambda: api_viewers(api, stream.public_id) == 1, what="1 viewer in the API")
    for socket in (owner_socket, a):
        socket.next(viewers_event(1))
    listed = api.get("/streams").get_json()["streams"]
    assert [s["viewers"] for s in listed if s["id"] == stream.public_id] == [1]


def test_sockets_of_a_killed_process_stop_counting_within_the_expiry(
    servers,
    short_expiry,
    client,
    make_user,
    make_stream,
    make_token,
    sockets,  # noqa: F811
):
    """A process killed outright (no close, no clean-up) leaves its viewers
    in Redis only until the expiry; the pages on other processes are told,
    the creator's too, though its own socket is the only one there."""
    (first_url, _), (second_url, second) = servers
    owner = make_user()
    stream = make_stream(owner)
    api = Api(client, make_token(owner))
    creator = sockets(
        ws_url(first_url, stream.public_id), browser_headers(login(first_url, owner.email))
    )
    survivor = sockets(ws_url(first_url, stream.public_id))
    doomed = [sockets(ws_url(second_url, stream.public_id)) for _ in range(2)]
    wait_until(lambda: api_viewers(api, stream.public_id) == 3, what="3 viewers")
    for socket in (creator, survivor):
        socket.next(viewers_event(3))
    survivor.close()
    creator.next(viewers_event(2))

    os.kill(worker_pid(second.pid), signal.SIGKILL)
    # The only wait is for the expiry itself (plus a busy machine's slack).
    creator.next(viewers_event(0), timeout=EXPIRY + 20)
    assert api_viewers(api, stream.public_id) == 0
    del doomed  # their TCP connections died with the worker


def test_the_peak_is_recorded_on_the_broadcast(
    servers,
    short_expiry,
    client,
    db,
    make_user,
    make_stream,
    make_token,
    sockets,  # noqa: F811
):
    """While live, the broadcast's peak rises to the most viewers at once and
    stays there when they leave; the API's broadcast shows it."""
    (first_url, _), (second_url, _) = servers
    owner = make_user()
    stream = make_stream(owner)
    api = Api(client, make_token(owner))
    publish(client, stream)
    watchers = [sockets(ws_url(url, stream.public_id)) for url in (first_url, second_url) * 2]

    def peak() -> int:
        db.session.rollback()
        return db.session.scalar(
            select(Broadcast.peak_viewers).where(Broadcast.stream_id == stream.id)
        )

    wait_until(lambda: peak() == 4, what="peak of 4")
    for socket in watchers[1:]:
        socket.close()
    wait_until(lambda: api_viewers(api, stream.public_id) == 1, what="1 viewer left")
    assert peak() == 4
    (broadcast,) = api.get(f"/streams/{stream.public_id}/broadcasts").get_json()["broadcasts"]
    assert broadcast["peak_viewers"] == 4
