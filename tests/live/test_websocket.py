"""The stream websocket `/ws/streams/<id>` against a real gunicorn (gthread),
with real PostgreSQL and Redis pub/sub; no browser."""

from __future__ import annotations

import contextlib
import json
import signal
import socket as tcp
import threading
import time

import pytest
from simple_websocket import ConnectionClosed

from studio import fanout
from studio.core import events
from studio.live.hub import get_hub
from tests.e2e.golive.harness import login
from tests.live.conftest import Client, browser_headers, run_gunicorn, ws_url
from tests.polling import poll
from tests.watch.test_pages import add_broadcast

HOOK = "/hooks/nginx-rtmp?token=test-hook-token"


class Socket:
    """A websocket client that remembers every message it received."""

    def __init__(self, url: str, headers: dict | None = None):
        self.ws = Client.connect(url, headers=headers)
        self.raw: list[str] = []

    def next(self, predicate, timeout: float = 20.0) -> dict:
        """The first message (from now on) matching `predicate`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            data = self.ws.receive(timeout=left)
            if data is None:
                break
            self.raw.append(data)
            event = json.loads(data)
            if predicate(event):
                return event
        raise AssertionError(f"no matching message within {timeout}s; got {self.raw}")

    def drain(self) -> list[dict]:
        """Messages already delivered, without waiting."""
        events = []
        while (data := self.ws.receive(timeout=0)) is not None:
            self.raw.append(data)
            events.append(json.loads(data))
        return events

    def close(self):
        self.ws.close()


def is_status(status: str):
    return lambda event: event["type"] == "status" and event["status"] == status


def publish(client, stream, call="publish", clientid="41"):
    form = {
        "call": call,
        "app": "live",
        "name": stream.public_id,
        "clientid": clientid,
        "secret": stream.stream_key,
        "addr": "127.0.0.1",
    }
    reply = client.post(HOOK, data=form)
    assert reply.status_code == 200, reply.get_data(as_text=True)


@pytest.fixture()
def sockets():
    opened: list[Socket] = []

    def connect(url: str, headers: dict | None = None) -> Socket:
        socket = Socket(url, headers)
        opened.append(socket)
        return socket

    yield connect
    for socket in opened:
        with contextlib.suppress(ConnectionClosed):
            socket.close()


def test_viewer_gets_current_status_on_connect(live_server, make_stream, sockets):
    """A viewer's socket first receives the stream's status as stored."""
    stream = make_stream()
    viewer = sockets(ws_url(live_server, stream.public_id))
    event = viewer.next(lambda e: e["type"] == "status")
    assert event["stream"] == stream.public_id
    assert event["status"] == "created"
    assert event["disabled"] is False


def test_publish_and_unpublish_are_pushed_without_the_key(
    live_server, client, make_stream, sockets
):
    """A hook publish reaches watching sockets as `live` (with the broadcast's
    start) and the unpublish as `ended`; no message carries the stream key."""
    stream = make_stream()
    viewer = sockets(ws_url(live_server, stream.public_id))
    viewer.next(is_status("created"))

    publish(client, stream)
    live = viewer.next(is_status("live"))
    assert live["broadcast"]["started_at"]
    assert live["broadcast"]["ended_at"] is None
    assert live["now"]

    publish(client, stream, call="publish_done")
    ended = viewer.next(is_status("ended"))
    assert ended["broadcast"]["ended_at"]
    assert viewer.raw and not any(stream.stream_key in raw for raw in viewer.raw)


def test_ingest_health_goes_to_the_owner_only(live_server, client, make_user, make_stream, sockets):
    """While live, the owner's socket gets ingest health every ~2 s (here the
    engine is unreachable, which is reported, not fatal); a viewer's socket
    and another logged-in user's socket get none."""
    owner = make_user()
    stranger = make_user()
    stream = make_stream(owner=owner)
    publish(client, stream)
    url = ws_url(live_server, stream.public_id)
    owner_socket = sockets(url, browser_headers(login(live_server, owner.email)))
    viewer = sockets(url)
    stranger_socket = sockets(url, browser_headers(login(live_server, stranger.email)))
    for socket in (owner_socket, viewer, stranger_socket):
        socket.next(is_status("live"))

    first = owner_socket.next(lambda e: e["type"] == "health")
    second = owner_socket.next(lambda e: e["type"] == "health", timeout=15)
    assert first == {**second, "now": first["now"]}
    assert first["error"] == "Media server unreachable."
    assert first["publishing"] is None

    for socket in (viewer, stranger_socket):
        assert [e for e in socket.drain() if e["type"] == "health"] == []
        assert not any(stream.stream_key in raw for raw in socket.raw)
    assert not any(stream.stream_key in raw for raw in owner_socket.raw)


def test_unknown_stream_is_closed_with_policy_code(live_server, db):
    """A socket for a stream that does not exist is closed with 1008."""
    ws = Client.connect(ws_url(live_server, "nosuchstream0000"))
    with pytest.raises(ConnectionClosed):
        ws.receive(timeout=5)
    assert ws.close_reason == 1008


def test_closed_sockets_leave_no_watchers_or_threads(threaded_server, app, make_stream):
    """Once clients go away, their sockets stop watching the stream and their
    threads end."""
    stream = make_stream()
    hub = get_hub(app)
    url = ws_url(threaded_server, stream.public_id)
    first = Socket(url)
    first.next(is_status("created"))  # also starts the hub's thread
    baseline = threading.active_count()

    clients = [Socket(url) for _ in range(5)]
    for socket in clients:
        socket.next(is_status("created"))
    assert hub.watcher_count() == 6
    for socket in [first, *clients]:
        socket.close()

    poll(lambda: not hub.watcher_count() and threading.active_count() <= baseline - 2, 10)
    assert hub.watcher_count() == 0
    # `first`'s handler and reader threads are gone too.
    assert threading.active_count() <= baseline - 2


def test_sockets_close_with_going_away_when_the_server_stops(app, services, make_stream):
    """On a graceful stop (SIGTERM), open sockets are closed with 1001 at once
    (well within the 20 s graceful timeout), so pages reconnect elsewhere."""
    stream = make_stream()
    with run_gunicorn(app, services) as (url, process):
        socket = Socket(ws_url(url, stream.public_id))
        socket.next(is_status("created"))
        process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            socket.next(lambda event: False, timeout=10)
        assert socket.ws.close_reason == 1001
        process.wait(timeout=10)


def test_a_client_that_stops_answering_pings_is_dropped(threaded_server, app, make_stream):
    """A browser that vanished without closing (no pong to the server's ping)
    stops watching the stream; its TCP connection is still open here."""
    stream = make_stream()
    hub = get_hub(app)
    options = app.config.get("SOCK_SERVER_OPTIONS")
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 0.3}
    host, port = threaded_server.removeprefix("http://").split(":")
    silent = tcp.create_connection((host, int(port)), timeout=5)
    try:
        silent.sendall(
            (
                f"GET /ws/streams/{stream.public_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert silent.recv(4096).startswith(b"HTTP/1.1 101")
        poll(hub.watcher_count, timeout=5)
        assert hub.watcher_count() == 1
        # Never read, never pong: the server gives up after one missed pong.
        poll(lambda: hub.watcher_count() == 0, timeout=10)
        assert hub.watcher_count() == 0
    finally:
        silent.close()
        app.config["SOCK_SERVER_OPTIONS"] = options


def test_replay_events_are_relayed_and_internal_events_are_not(
    live_server, app, db, make_stream, sockets
):
    """A replay announcement reaches viewers; an event type not meant for
    pages (published on the same channel) does not."""
    stream = make_stream()
    viewer = sockets(ws_url(live_server, stream.public_id))
    viewer.next(is_status("created"))
    broadcast = add_broadcast(db, stream, ended=True, replay=True)

    fanout.publish(app, stream.public_id, {"type": "segment", "path": "/var/hls/x.ts"})
    events.raise_event(db.session, events.ReplayReady(stream.public_id, broadcast.id))
    db.session.commit()

    # Status, viewer counts and the chat's history come and go; the next
    # other event is the replay.
    replay = viewer.next(lambda e: e["type"] not in ("status", "viewers", "chat.history"))
    assert replay["type"] == "replay"
    assert replay["broadcast"] == {"id": broadcast.id}
    assert all(json.loads(raw)["type"] != "segment" for raw in viewer.raw)


def test_target_changes_go_to_the_owner_only(live_server, app, db, make_user, make_stream, sockets):
    """A multistream target's state change reaches the owner's page (which
    re-reads its list); a viewer's socket never hears of targets."""
    owner = make_user()
    stream = make_stream(owner=owner)
    url = ws_url(live_server, stream.public_id)
    owner_socket = sockets(url, browser_headers(login(live_server, owner.email)))
    viewer = sockets(url)
    for socket in (owner_socket, viewer):
        socket.next(is_status("created"))

    events.raise_event(db.session, events.TargetStateChanged(stream.public_id, 7, "retrying", "x"))
    db.session.commit()

    change = owner_socket.next(lambda e: e["type"] == "targets")
    assert change["stream"] == stream.public_id
    assert change["target"] == {"id": 7, "state": "retrying"}
    events.raise_event(db.session, events.ReplayReady(stream.public_id, 1))
    db.session.commit()
    viewer.next(lambda e: e["type"] == "replay")  # later on the same channel
    assert all(json.loads(raw)["type"] != "targets" for raw in viewer.raw)


def test_a_private_streams_socket_is_for_allowed_viewers_only(
    live_server, db, make_user, make_stream, sockets
):
    """A private stream's socket (status, viewers) is closed with 1008 for a
    visitor and another creator, as for a stream that does not exist; its
    owner gets the status."""
    from studio.streams import access

    owner = make_user()
    stranger = make_user()
    stream = make_stream(owner=owner)
    access.set_visibility(db.session, stream, "private")
    db.session.commit()
    url = ws_url(live_server, stream.public_id)
    for headers in ({}, browser_headers(login(live_server, stranger.email))):
        ws = Client.connect(url, headers=headers)
        with pytest.raises(ConnectionClosed):
            ws.receive(timeout=5)
        assert ws.close_reason == 1008
    owner_socket = sockets(url, browser_headers(login(live_server, owner.email)))
    assert owner_socket.next(is_status("created"))["stream"] == stream.public_id


def test_reconnecting_is_pushed_with_its_deadline(live_server, client, make_stream, sockets):
    """A publisher dropping within the window reaches watching sockets as
    `reconnecting` with the deadline and the same broadcast; its return as
    `live` again (no deadline), the broadcast unchanged."""
    stream = make_stream(reconnect_window=60)
    viewer = sockets(ws_url(live_server, stream.public_id))
    viewer.next(is_status("created"))
    publish(client, stream)
    live = viewer.next(is_status("live"))
    publish(client, stream, call="publish_done")
    waiting = viewer.next(is_status("reconnecting"))
    assert waiting["reconnect_deadline"]
    assert waiting["broadcast"] == live["broadcast"]
    publish(client, stream, clientid="42")
    back = viewer.next(is_status("live"))
    assert "reconnect_deadline" not in back
    assert back["broadcast"]["id"] == live["broadcast"]["id"]
    # A viewer connecting while it waits gets the deadline in the first event.
    publish(client, stream, call="publish_done", clientid="42")
    viewer.next(is_status("reconnecting"))
    late = sockets(ws_url(live_server, stream.public_id))
    assert late.next(lambda e: e["type"] == "status")["reconnect_deadline"]


def _closed_for_good(socket: Socket) -> None:
    """The socket was told `unavailable` and closed with 1008 (which pages
    do not retry)."""
    socket.next(lambda e: e["type"] == "unavailable")
    with pytest.raises(ConnectionClosed):
        while True:
            socket.ws.receive(timeout=10)
    assert socket.ws.close_reason == 1008


def test_made_private_while_watched_closes_the_sockets_of_who_may_not_watch(
    live_server, db, make_user, make_stream, sockets
):
    """A stream made private while watched: a visitor's socket and another
    creator's hear `unavailable` and are closed with 1008, so neither its
    status nor its chat reaches them any more; the owner's socket stays and
    gets what follows. Made public again, nothing is closed."""
    from studio.streams import access

    owner, stranger = make_user(), make_user()
    stream = make_stream(owner=owner)
    url = ws_url(live_server, stream.public_id)
    visitor = sockets(url)
    other = sockets(url, browser_headers(login(live_server, stranger.email)))
    mine = sockets(url, browser_headers(login(live_server, owner.email)))
    for socket in (visitor, other, mine):
        socket.next(is_status("created"))
    access.set_visibility(db.session, stream, "private")
    db.session.commit()
    _closed_for_good(visitor)
    _closed_for_good(other)
    events.raise_event(db.session, events.ReplayReady(stream.public_id, 1))
    db.session.commit()
    mine.next(lambda e: e["type"] == "replay")
    assert all(json.loads(raw)["type"] != "unavailable" for raw in mine.raw)
    access.set_visibility(db.session, stream, "public")
    db.session.commit()
    later = sockets(url)
    later.next(is_status("created"))
    access.set_visibility(db.session, stream, "unlisted")
    db.session.commit()
    events.raise_event(db.session, events.ReplayReady(stream.public_id, 2))
    db.session.commit()
    later.next(lambda e: e["type"] == "replay")


def test_a_deleted_streams_sockets_are_closed(live_server, db, make_user, make_stream, sockets):
    """Deleting a watched stream tells every socket `unavailable` (its
    owner's too) and closes it with 1008."""
    from studio.streams import service

    owner = make_user()
    stream = make_stream(owner=owner)
    url = ws_url(live_server, stream.public_id)
    viewer = sockets(url)
    mine = sockets(url, browser_headers(login(live_server, owner.email)))
    for socket in (viewer, mine):
        socket.next(is_status("created"))
    service.delete_stream(db.session, stream)
    db.session.commit()
    _closed_for_good(viewer)
    _closed_for_good(mine)
