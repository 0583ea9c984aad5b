"""Websockets: live status pushed to the watch page and the creator's page.

`/ws/streams/<public_id>` sends the stream's current status and its chat
on connect, then every public event of the stream as it happens (relayed
from Redis pub/sub through the process's hub). The stream's owner,
recognised by the session cookie, also gets the engine's ingest health every
few seconds while live. Clients write in the chat and moderators moderate
over the same socket (`studio/live/chat.py`).

A socket whose client stops reading is dropped: its kernel send buffer is
small and bounded, a send that cannot proceed for SEND_TIMEOUT seconds ends
the socket, and its queue of events is bounded (`hub.QUEUE_SIZE`; past it
the socket gets a resync, not a backlog).

These routes run on the socket tier (gunicorn_sockets.conf.py: gevent
workers, where the handler and simple-websocket's reader are greenlets);
nginx sends `/ws/` there and everything else to the web tier, so sockets
never take the threads pages and media-server callbacks need. A socket holds
no database connection and no Redis connection between messages.

`/ws/refused` is where nginx sends a socket over its per-address limit:
accepted only to be closed with 1013 (try again later), which a page can
read, unlike a refused upgrade.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import socket
import threading
import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request
from flask_login import current_user
from simple_websocket import ConnectionClosed
from sqlalchemy import select

from studio import fanout, viewers
from studio.chat import service as chat_service
from studio.core import events
from studio.extensions import db, sock
from studio.ingest_history import measured_kbps
from studio.live import chat
from studio.live.hub import RESYNC, SHUTTING_DOWN, Writer, get_hub, take, text_frame
from studio.media import engines
from studio.models import Stream, User, utcnow
from studio.streams import service
from studio.watch import grants

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__)

# Event types anyone may receive; anything else on the channel stays server-side.
PUBLIC_EVENTS = frozenset({"status", "replay", "viewers"})
# Event types only the stream's owner receives (target names and states).
OWNER_EVENTS = frozenset({"targets"})
POLICY_VIOLATION = 1008
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
MAX_CLIENT_MESSAGE = chat.HARD_FRAME_MAX
# Frames a client may have sent that the handler has not read yet.
INPUT_BACKLOG = 64
# A client that takes nothing from its socket for this long is dropped.
SEND_TIMEOUT = 10.0
SEND_BUFFER = 64 * 1024  # the kernel's send buffer per socket (it doubles it)
HEALTH_INTERVAL = 2.0
# How long the handler waits for an event before checking the socket, the
# shutdown flag and the health timer again: bounds how long a closed socket
# keeps its greenlet and how soon a stopping server closes it. Owners wake
# often for their health timer; viewers, who are most of the thousands of
# sockets a process holds, less often (each wake-up costs CPU).
TICK = 1.0
VIEWER_TICK = 5.0


class _StreamGone(Exception):
    """The stream was deleted while watched, or its viewer may no longer watch it."""


@bp.before_request
def _no_compression() -> None:
    """Stream sockets are not compressed (the offer of permessage-deflate is
    dropped before the handshake): their messages are small, a compressor
    per socket costs hundreds of KiB and CPU for every message to every
    socket, and uncompressed frames can be encoded once per event for all
    sockets (`_send_shared`)."""
    if request.endpoint == "live.stream_socket":
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


@sock.route("/ws/streams/<public_id>", bp=bp)
def stream_socket(ws, public_id: str) -> None:
    """Push one stream's status and chat (and, to its owner, ingest health);
    take the client's chat messages and moderation."""
    if not chat.limits().allow_join(request.remote_addr or ""):
        ws.close(reason=TRY_AGAIN_LATER, message="Too many connections from your address.")
        return
    stream = db.session.scalar(_stream_query(public_id))
    # A private stream's status and viewers only for whoever may watch it;
    # to anyone else it is as unknown as a stream that does not exist.
    if stream is None or not grants.allowed(stream):
        db.session.remove()
        ws.close(reason=POLICY_VIOLATION, message="Unknown stream.")
        return
    user = _same_origin_user()
    owner = user is not None and user.id == stream.owner_id
    talker = chat.ChatSocket(
        public_id,
        user,
        chat_service.is_moderator(db.session, stream, user),
        request.remote_addr or "",
    )
    db.session.remove()  # no database connection held while the socket is open
    ws.max_message_size = MAX_CLIENT_MESSAGE
    _bound_sending(ws)

    app = current_app._get_current_object()
    hub = get_hub(app)
    # Joined before reading the status: no event can slip between.
    watching = hub.join(public_id, wake=ws.event)
    # Everyone but the creator counts as a viewer while the socket is open;
    # the creator's pages are kept up to date all the same.
    counter = viewers.get_counter(app)
    member = None
    if owner:
        counter.follow(public_id)
    else:
        member = counter.add(public_id)
    try:
        _relay(ws, public_id, watching, owner, talker)
        if SHUTTING_DOWN.is_set():
            ws.close(reason=GOING_AWAY, message="Server restarting.")
    except _StreamGone:
        # The page stops its player and its chat, and does not come back.
        with contextlib.suppress(ConnectionClosed, OSError):
            _send(ws, {"type": "unavailable"})
        ws.close(reason=POLICY_VIOLATION, message="Unknown stream.")
    except chat.Flooding:
        ws.close(reason=POLICY_VIOLATION, message="Too many messages.")
    except OSError as exc:  # a send timed out: the client stopped reading
        log.info("dropping a socket of stream %s that stopped reading (%s)", public_id, exc)
        _drop(ws)
    finally:
        if member is None:
            counter.unfollow(public_id)
        else:
            counter.remove(public_id, member)
        hub.leave(public_id, watching)
        db.session.remove()


@sock.route("/ws/refused", bp=bp)
def refused_socket(ws) -> None:
    """Close at once with 1013: this address has too many sockets open."""
    ws.close(reason=TRY_AGAIN_LATER, message="Too many connections from your address.")


def _relay(ws, public_id: str, watching: queue.Queue, owner: bool, talker: chat.ChatSocket) -> None:
    # The hub may write chat frames straight to this socket (gevent tier
    # only); this handler writes everything else holding the same lock.
    writer = Writer(ws.sock) if getattr(ws, "bounded", False) else None
    writing = writer.lock if writer is not None else contextlib.nullcontext()
    try:
        with writing:
            status = _send_status(ws, public_id, talker)
        watching.writer = writer
        _serve(ws, public_id, watching, owner, talker, writing, status)
    finally:
        watching.writer = None


def _serve(ws, public_id, watching, owner, talker, writing, status) -> None:
    next_health = time.monotonic()
    tick = TICK if owner else VIEWER_TICK
    wake = ws.event  # set by the socket's reader on input and by the hub on events
    while ws.connected and not SHUTTING_DOWN.is_set():
        wake.wait(timeout=tick)
        wake.clear()
        with writing:
            status = _handle(ws, public_id, watching, talker, status, owner)
        if owner and status == "live" and time.monotonic() >= next_health:
            with writing:
                _send(ws, _health_event(public_id))
            next_health = time.monotonic() + HEALTH_INTERVAL


def _handle(ws, public_id, watching, talker, status, owner: bool) -> str:
    """The client's frames, then the queued events; returns the stream's status.
    Owner-only events (multistream targets) reach the owner's sockets only."""
    _read_input(ws, talker)
    while (event := take(watching)) is not None:
        if isinstance(event, bytes):  # the rest of a frame the hub began
            ws.sock.sendall(event)
        elif event is RESYNC:
            status = _send_status(ws, public_id, talker)
        elif event.get("type") == fanout.GONE:
            raise _StreamGone(public_id)
        elif event.get("type") == fanout.ACCESS:
            if not owner:
                _check_access(public_id)
        elif event.get("type") in PUBLIC_EVENTS:
            if event["type"] == "status":
                status = event.get("status", status)
            _send_shared(ws, event)
        elif owner and event.get("type") in OWNER_EVENTS:
            _send(ws, event)
        elif (view := talker.view(event)) is event:
            _send_shared(ws, event)
        elif view is not None:
            _send(ws, view)
    return status


def _read_input(ws, talker: chat.ChatSocket) -> None:
    """Act on every frame the client sent since the last look. Raises
    ConnectionClosed once the client has gone, Flooding when it floods."""
    if not ws.input_buffer:  # the common case: woken by an event, not by the client
        if not ws.connected:
            raise ConnectionClosed(ws.close_reason, ws.close_message)
        return
    if len(ws.input_buffer) > INPUT_BACKLOG:
        raise chat.Flooding
    while (data := ws.receive(timeout=0)) is not None:
        reply = talker.handle(data)
        if reply is not None:
            _send(ws, reply)


def _check_access(public_id: str) -> None:
    """Raises _StreamGone unless this socket's viewer (the session and share
    links of its handshake) may still watch the stream."""
    try:
        stream = db.session.scalar(_stream_query(public_id))
        if stream is None or not grants.allowed(stream):
            raise _StreamGone(public_id)
    finally:
        db.session.remove()


def _send_status(ws, public_id: str, talker: chat.ChatSocket) -> str:
    """Send the stream's status and chat as the database has them; returns the status."""
    try:
        stream = db.session.scalar(_stream_query(public_id))
        if stream is None:
            raise _StreamGone(public_id)
        broadcast = service.open_broadcast(db.session, stream)
        event = fanout.status_message(events.stream_changed(stream, broadcast))
        history = talker.history(stream, broadcast.id if broadcast else None)
    finally:
        db.session.remove()
    _send(ws, event)
    _send(ws, history)
    # The count as it is now; changes follow as `viewers` events.
    public_id = event["stream"]
    _send(ws, viewers.viewers_message(public_id, viewers.count(current_app, public_id)))
    return event["status"]


def _send(ws, event: dict) -> None:
    # The server's clock travels with each event so pages can show the
    # elapsed time of a broadcast whatever their own clock says.
    ws.send(json.dumps({**event, "now": utcnow().isoformat()}))


def _send_shared(ws, event: dict) -> None:
    """Send an event the hub hands to every socket of the stream: encoded
    once, JSON and websocket frame, by the first socket to send it (50 chat
    messages a second to a thousand sockets would otherwise be 50,000
    encodings a second). Stream sockets are never compressed
    (`_no_compression`), so a frame is the same bytes for every socket."""
    frame = event.get("_frame")
    if frame is None:
        frame = event["_frame"] = text_frame(json.dumps({**event, "now": utcnow().isoformat()}))
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.sendall(frame)


def _drop(ws) -> None:
    """End a socket without the closing handshake (its client is not reading)."""
    ws.connected = False
    ws.event.set()
    with contextlib.suppress(OSError):
        ws.sock.shutdown(socket.SHUT_RDWR)


def _bound_sending(ws) -> None:
    """A small kernel send buffer and a send timeout: a client that stops
    reading fills it, and the next send fails after SEND_TIMEOUT instead of
    holding the handler (and its queue) for ever. The reader waits for input
    with a selector before each recv (it pings), so the timeout never fires
    on an idle socket's read."""
    raw = getattr(ws, "sock", None)
    if raw is None or not ws.ping_interval:
        return
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        raw.settimeout(SEND_TIMEOUT)
        ws.bounded = True
    except OSError:
        log.debug("could not bound the socket's sending", exc_info=True)


def _health_event(public_id: str) -> dict:
    """What the media engine of the stream's node sees of the publisher, for
    the owner only."""
    try:
        publishers = _publisher_cache(_node_of(public_id)).get()
        stats = next((p for p in publishers if p.stream_name == public_id), None)
    except engines.EngineError as exc:
        log.info("ingest stats unavailable for %s: %s", public_id, exc)
        return {"type": "health", "publishing": None, "error": "Media server unreachable."}
    if stats is None:
        return {"type": "health", "publishing": False}
    return {"type": "health", "publishing": True, **stats.as_dict()}


class _PublisherCache:
    """The engine's publisher list, shared by this process's owner sockets
    for a moment: one stats request per interval however many creators
    watch, instead of one per socket (the engine's list covers every stream,
    and at hundreds of streams it is not small)."""

    def __init__(self, ttl: float, node_id: str | None = None):
        self._ttl = ttl
        self._node_id = node_id
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._value: list[engines.IngestStats] | engines.EngineError = []
        self._rates = IngestRates()

    def get(self) -> list[engines.IngestStats]:
        with self._lock:  # one fetch at a time; the others wait and share it
            if time.monotonic() - self._at >= self._ttl:
                try:
                    fetched = engines.for_node(self._node_id).publishers()
                    self._value = self._rates.measure(fetched, time.monotonic())
                except engines.EngineError as exc:
                    self._value = exc  # a down engine is asked once per interval too
                self._at = time.monotonic()
            value = self._value
        if isinstance(value, engines.EngineError):
            raise value
        return value


class IngestRates:
    """The inbound bitrate of each publisher, measured between this process's
    samples (`measured_kbps`: unknown until two exist, never a false 0)."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[int, float]] = {}

    def measure(
        self, publishers: list[engines.IngestStats], now: float
    ) -> list[engines.IngestStats]:
        """`publishers` with `kbps` set from the bytes received since the
        previous sample (the engine's average when it has no byte count)."""
        seen: dict[tuple[str, str], tuple[int, float]] = {}
        measured = []
        for publisher in publishers:
            if publisher.bytes_in is None:
                measured.append(publisher)
                continue
            key = (publisher.stream_name, publisher.client_id)
            seen[key] = (publisher.bytes_in, now)
            kbps = measured_kbps(publisher.bytes_in, now, self._last.get(key), publisher.kbps)
            measured.append(dataclasses.replace(publisher, kbps=kbps))
        self._last = seen
        return measured


def _publisher_cache(node_id: str | None = None) -> _PublisherCache:
    """This process's publisher list of one media node's engine."""
    caches = current_app.extensions.setdefault("studio_publisher_caches", {})
    if node_id not in caches:
        caches[node_id] = _PublisherCache(HEALTH_INTERVAL * 0.75, node_id)
    return caches[node_id]


def _node_of(public_id: str) -> str | None:
    """The media node holding the stream's broadcast (None: `default`)."""
    try:
        return db.session.scalar(select(Stream.node_id).where(Stream.public_id == public_id))
    finally:
        db.session.remove()


def _same_origin_user() -> User | None:
    """The logged-in user, on a same-origin socket only: a page on another
    site cannot borrow a creator's cookie to read health, to moderate or to
    write under their name."""
    if not current_user.is_authenticated:
        return None
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return None
    return current_user._get_current_object()


def _stream_query(public_id: str):
    return select(Stream).where(Stream.public_id == public_id)
