"""Per-process fan-out of stream events from Redis pub/sub to websockets.

One daemon thread per web worker process holds a single pattern
subscription (`studio:stream:*`) and hands each message to the queues of
the sockets watching that stream. A socket therefore costs one small queue,
not a Redis connection. Status events are rare (publish, unpublish, disable,
replay ready), so receiving every stream's events in every process is cheap,
and a pattern subscription needs no subscribe/unsubscribe traffic (redis-py's
PubSub is not safe to drive from several threads).

Chat messages and deletions (DIRECT_EVENTS), identical for every socket,
are encoded once and, on the gevent socket tier, written by the hub straight
to each socket that has nothing queued and room in its buffer (never
waiting); the others get them through their queues, in order.

Whenever the subscription is (re)established, events may have been missed:
every queue then receives `RESYNC`, and its socket re-reads the state from
the database.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import struct
import threading
from collections import defaultdict
from datetime import UTC, datetime

import redis
from flask import Flask

from studio.fanout import channel

log = logging.getLogger(__name__)

RESYNC = {"type": "_resync"}  # a sentinel, never sent to a client
# Set when the worker process is asked to stop: sockets close (1001) at once
# so pages reconnect to another worker instead of holding this one's threads
# until the server's graceful timeout runs out.
SHUTTING_DOWN = threading.Event()
# Events a socket may fall behind by (references to shared dicts: cheap);
# at 50 chat messages a second that is five seconds.
QUEUE_SIZE = 256
_PREFIX = channel("")
_RETRY_MAX = 10.0


# Events identical for every socket that the hub writes straight to sockets
# (their handlers need not see them): chat messages come 50 a second, and
# waking a thousand greenlets for each costs more than the writes.
DIRECT_EVENTS = frozenset({"chat.message", "chat.deleted"})


class Writer:
    """Lets the hub write a frame straight to a socket of the gevent socket
    tier. `lock` is held by whoever writes (the hub, or the socket's handler
    for everything else), so frames never interleave."""

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()

    def send_nowait(self, frame: bytes) -> int | None:
        """Bytes written without waiting, or None if none could be."""
        raw = getattr(self.sock, "_sock", None)  # gevent's non-blocking socket
        if raw is None:
            return None
        try:
            return raw.send(frame)
        except OSError:  # a full buffer (the handler takes over) or a closed socket
            return None


class Watch(queue.Queue):
    """A socket's queue of events, with the event that wakes its handler and
    (on the gevent socket tier) the writer the hub may write through."""

    def __init__(self, maxsize: int, wake: threading.Event | None = None):
        super().__init__(maxsize)
        self.wake = wake
        self.writer: Writer | None = None


class Hub:
    """Routes events from one Redis pattern subscription to socket queues."""

    def __init__(self, redis_url: str):
        self._redis_url = redis_url
        self._lock = threading.Lock()
        self._queues: dict[str, set[queue.Queue]] = defaultdict(set)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.connected = threading.Event()

    def join(self, public_id: str, wake: threading.Event | None = None) -> queue.Queue:
        """A new queue that receives every event of the stream from now on;
        `wake` (if given) is set after each event, so a socket can wait for
        its client and its events at once."""
        events = Watch(QUEUE_SIZE, wake)
        with self._lock:
            self._queues[public_id].add(events)
            if self._thread is None or not self._thread.is_alive():
                self._start()
        return events

    def leave(self, public_id: str, events: queue.Queue) -> None:
        """Stop delivering to `events` (idempotent)."""
        with self._lock:
            watchers = self._queues.get(public_id)
            if watchers is not None:
                watchers.discard(events)
                if not watchers:
                    del self._queues[public_id]

    def watcher_count(self) -> int:
        """How many sockets of this process are watching a stream."""
        with self._lock:
            return sum(len(watchers) for watchers in self._queues.values())

    def stop(self) -> None:
        """End the subscriber thread (tests; a worker process just exits)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._thread = None
            self._stopping.clear()
            self.connected.clear()

    def _start(self) -> None:
        # Started lazily, on the first socket: gunicorn forks workers after
        # the app is imported and threads do not survive a fork.
        self._thread = threading.Thread(target=self._run, name="studio-live-hub", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            client = redis.Redis.from_url(
                self._redis_url, socket_connect_timeout=2, health_check_interval=15
            )
            pubsub = client.pubsub()
            try:
                pubsub.psubscribe(_PREFIX + "*")
                _confirmed(pubsub)
                self.connected.set()
                # Sockets that joined before this subscription existed (or
                # while it was down) may have missed events: re-read the truth.
                self._deliver_all(RESYNC)
                delay = 0.5
                self._listen(pubsub)
            except (redis.RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("live events subscription lost (%s); retrying in %.1fs", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, _RETRY_MAX)
            finally:
                pubsub.close()
                client.close()

    def _listen(self, pubsub) -> None:
        while not self._stopping.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "pmessage":
                continue
            public_id = _decode(message["channel"])[len(_PREFIX) :]
            with self._lock:
                targets = list(self._queues.get(public_id, ()))
            if not targets:
                continue  # nobody here watches this stream: skip the parsing
            try:
                event = json.loads(message["data"])
            except (ValueError, TypeError):
                log.warning("ignoring a malformed event on stream %s", public_id)
                continue
            if not isinstance(event, dict):
                continue
            frame = None
            if event.get("type") in DIRECT_EVENTS:
                now = datetime.now(UTC).isoformat()
                frame = event["_frame"] = text_frame(json.dumps({**event, "now": now}))
            for events in targets:
                if frame is None or not _write_direct(events, frame):
                    _offer(events, event)

    def _deliver_all(self, event: dict) -> None:
        with self._lock:
            targets = [q for watchers in self._queues.values() for q in watchers]
        for events in targets:
            _offer(events, event)


def _confirmed(pubsub, timeout: float = 5.0) -> None:
    """Wait for Redis to confirm the subscription: from then on no event is
    missed, which is what `connected` promises."""
    message = pubsub.get_message(timeout=timeout)
    if message is None or message.get("type") != "psubscribe":
        raise redis.ConnectionError(f"no subscription confirmation (got {message!r})")


def _offer(events: queue.Queue, event: dict) -> None:
    """Queue an event; a socket too slow to keep up gets a resync instead of
    an ever-growing backlog (the database holds the truth)."""
    wake = getattr(events, "wake", None)
    if wake is not None:
        # A socket's queue: its handler waits on `wake` and only ever takes
        # from the deque (`take`), so no lock or condition is needed (append
        # and popleft are atomic): this runs for every event and every socket.
        backlog = events.queue
        if len(backlog) >= events.maxsize:
            backlog.clear()
            backlog.append(RESYNC)
        else:
            backlog.append(event)
        wake.set()
        return
    try:
        events.put_nowait(event)
    except queue.Full:
        _clear(events)
        events.put_nowait(RESYNC)


def _write_direct(events: queue.Queue, frame: bytes) -> bool:
    """Write `frame` to the socket now if nothing is ahead of it and its
    buffer has room; False to queue it instead. Never waits."""
    writer = getattr(events, "writer", None)
    if writer is None or not writer.lock.acquire(blocking=False):
        return False
    try:
        if events.queue:  # older events wait for the handler: keep the order
            return False
        sent = writer.send_nowait(frame)
        if sent is None:
            return False
        if sent < len(frame):
            events.queue.append(frame[sent:])  # the rest, before anything else
            events.wake.set()
        return True
    finally:
        writer.lock.release()


def text_frame(text: str) -> bytes:
    """A final, unmasked websocket text frame (RFC 6455 5.2) holding `text`."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def take(events: queue.Queue) -> dict | bytes | None:
    """The next event of a socket's queue (joined with `wake`), or None; bytes
    are the rest of a frame the hub began to write."""
    try:
        return events.queue.popleft()
    except IndexError:
        return None


def _clear(events: queue.Queue) -> None:
    try:
        while True:
            events.get_nowait()
    except queue.Empty:
        pass


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_hub_lock = threading.Lock()


def get_hub(app: Flask) -> Hub:
    """The process's hub for this app, created on first use."""
    with _hub_lock:
        hub = app.extensions.get("studio_live_hub")
        if hub is None:
            hub = Hub(app.config["REDIS_URL"])
            app.extensions["studio_live_hub"] = hub
        return hub


def close_sockets_on(signum: int = signal.SIGTERM) -> None:
    """Chain a handler for `signum` that tells every socket to close, then
    runs the previous handler (gunicorn's graceful stop). Call from the main
    thread (gunicorn's post_worker_init hook)."""
    previous = signal.getsignal(signum)

    def handler(received, frame):
        SHUTTING_DOWN.set()
        if callable(previous):
            previous(received, frame)

    signal.signal(signum, handler)
