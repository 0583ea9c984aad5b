"""The per-process hub that fans Redis pub/sub events out to socket queues,
against a real Redis server."""

from __future__ import annotations

import contextlib
import json
import queue
import socket as tcp
import threading
from types import SimpleNamespace

import pytest
import redis as redis_lib

from devtools.services import start_redis
from studio.fanout import channel
from studio.live.hub import RESYNC, Hub, Watch, Writer, _write_direct, take, text_frame
from tests.conftest import VAR
from tests.polling import poll


def next_event(events: queue.Queue, timeout: float = 5.0) -> dict:
    return events.get(timeout=timeout)


def next_real_event(events: queue.Queue) -> dict:
    """The next event that is not a resync."""
    while (event := next_event(events)) is RESYNC:
        pass
    return event


@pytest.fixture()
def private_redis():
    """A Redis of this test's own, so it can be stopped and restarted."""
    service = start_redis(VAR)
    yield service
    service.stop()


def test_events_reach_only_the_watchers_of_their_stream(private_redis):
    """Each queue gets its stream's events, in order; other streams' events
    and malformed messages are not delivered; a queue that left gets nothing."""
    hub = Hub(private_redis.url)
    publisher = redis_lib.Redis.from_url(private_redis.url)
    try:
        first, second, other = hub.join("stream1"), hub.join("stream1"), hub.join("stream2")
        left = hub.join("stream1")
        hub.leave("stream1", left)
        assert hub.connected.wait(5)
        publisher.publish(channel("stream1"), "not json")
        publisher.publish(channel("stream1"), json.dumps({"type": "status", "status": "live"}))
        publisher.publish(channel("stream1"), json.dumps({"type": "status", "status": "ended"}))
        for events in (first, second):
            assert next_real_event(events)["status"] == "live"
            assert next_real_event(events)["status"] == "ended"
        assert all(event is RESYNC for event in other.queue)
        assert left.empty()
        assert hub.watcher_count() == 3
    finally:
        hub.stop()


def test_a_lost_subscription_ends_in_a_resync(private_redis):
    """When Redis goes away and comes back, every watcher is told to re-read
    the state (events published meanwhile were lost), then events flow again."""
    hub = Hub(private_redis.url)
    try:
        events = hub.join("stream1")
        assert hub.connected.wait(5)
        assert next_event(events) is RESYNC
        port = int(private_redis.url.rsplit(":", 1)[1].split("/")[0])
        private_redis.stop()
        restarted = start_redis(VAR, port=port)
        try:
            assert next_event(events, timeout=15) is RESYNC
            publisher = redis_lib.Redis.from_url(restarted.url)
            publisher.publish(channel("stream1"), json.dumps({"type": "status", "status": "live"}))
            assert next_event(events)["status"] == "live"
        finally:
            restarted.stop()
    finally:
        hub.stop()


def test_a_watcher_that_falls_behind_gets_a_resync_not_a_backlog(private_redis):
    """A queue that is full is emptied and given a single resync, so a slow
    socket costs bounded memory and still ends up with the right state."""
    hub = Hub(private_redis.url)
    publisher = redis_lib.Redis.from_url(private_redis.url)
    try:
        events = hub.join("stream1")
        marker = hub.join("marker")
        assert hub.connected.wait(5)
        assert next_event(events) is RESYNC
        for n in range(events.maxsize + 5):
            publisher.publish(channel("stream1"), json.dumps({"type": "status", "n": n}))
        last = {"type": "status", "n": "last"}
        publisher.publish(channel("stream1"), json.dumps(last))
        # One subscription delivers in publish order: once the marker arrives,
        # the hub has routed every stream1 event while this socket read nothing.
        publisher.publish(channel("marker"), json.dumps({"type": "status"}))
        assert next_real_event(marker) == {"type": "status"}
        delivered = []
        while (event := next_event(events)) != last:
            delivered.append(event)
        assert RESYNC in delivered
        assert len(delivered) <= events.maxsize
    finally:
        hub.stop()


def test_an_event_wakes_its_socket(private_redis):
    """A queue joined with a wake event has it set by each event (so a
    socket's handler can wait for its client and its events at once);
    another stream's events leave it alone."""
    hub = Hub(private_redis.url)
    publisher = redis_lib.Redis.from_url(private_redis.url)
    wake, other_wake = threading.Event(), threading.Event()
    try:
        events = hub.join("stream1", wake=wake)
        hub.join("stream2", wake=other_wake)
        assert hub.connected.wait(5)
        wake.clear()
        other_wake.clear()
        settings = {"type": "chat.settings", "settings": {"mode": "off"}}
        publisher.publish(channel("stream1"), json.dumps(settings))
        assert wake.wait(5)
        assert next_real_event(events) == settings
        assert not other_wake.is_set()
    finally:
        hub.stop()


def test_chat_frames_are_written_straight_to_sockets_in_order(private_redis):
    """A chat message goes straight to a socket with a writer (one frame,
    encoded once); while older events wait in its queue, or its buffer is
    full, it is queued behind them instead, and never interleaved."""
    hub = Hub(private_redis.url)
    publisher = redis_lib.Redis.from_url(private_redis.url)
    server_end, client_end = tcp.socketpair()
    server_end.setblocking(False)
    client_end.settimeout(5)
    try:
        wake = threading.Event()
        events = hub.join("stream1", wake=wake)
        assert hub.connected.wait(5)
        while take(events) is not None:  # the connect resync
            pass
        events.writer = Writer(SimpleNamespace(_sock=server_end))

        message = {"type": "chat.message", "message": {"id": 1, "text": "hi"}}
        publisher.publish(channel("stream1"), json.dumps(message))
        frame = client_end.recv(4096)
        assert frame[0] == 0x81 and json.loads(frame[2:])["message"] == message["message"]
        assert take(events) is None

        events.queue.append({"type": "status", "status": "live"})  # an older event waits
        publisher.publish(channel("stream1"), json.dumps(message))
        assert wake.wait(5)
        poll(lambda: len(events.queue) == 2, timeout=5)
        assert [e["type"] for e in list(events.queue)] == ["status", "chat.message"]
        assert events.queue[1]["_frame"][0] == 0x81  # encoded once, for the handler too
    finally:
        hub.stop()
        server_end.close()
        client_end.close()


def test_a_full_socket_buffer_sends_chat_frames_through_the_queue():
    """The hub never waits on a socket: with no room in its buffer the
    frame is not written (the hub queues the event for the handler)."""
    server_end, client_end = tcp.socketpair()
    server_end.setblocking(False)
    try:
        events = Watch(8, threading.Event())
        events.writer = Writer(SimpleNamespace(_sock=server_end))
        with contextlib.suppress(BlockingIOError):
            while True:
                server_end.send(b"x" * 65536)
        assert _write_direct(events, text_frame("y" * 1000)) is False
        assert take(events) is None
        events.writer = Writer(SimpleNamespace())  # not a gevent socket: never direct
        assert _write_direct(events, text_frame("y")) is False
    finally:
        server_end.close()
        client_end.close()
