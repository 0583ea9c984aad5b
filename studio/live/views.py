"""Websockets: live status pushed to the watch page and the creator's page.

`/ws/streams/<public_id>` sends the stream's current status on connect, then
every public event of the stream as it happens (relayed from Redis pub/sub
through the process's hub). The stream's owner, recognised by the session
cookie, also gets the engine's ingest health every few seconds while live.

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

import dataclasses
import json
import logging
import queue
import threading
import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, request
from flask_login import current_user
from sqlalchemy import select

from studio import fanout, viewers
from studio.core import events
from studio.extensions import db, sock
from studio.live.hub import RESYNC, SHUTTING_DOWN, get_hub
from studio.media import engines
from studio.models import Stream, utcnow
from studio.streams import service
from studio.watch import grants

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__)

# Event types anyone may receive; anything else on the channel stays server-side.
PUBLIC_EVENTS = frozenset({"status", "replay", "viewers"})
POLICY_VIOLATION = 1008
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
MAX_CLIENT_MESSAGE = 1024
HEALTH_INTERVAL = 2.0
# How long the handler waits for an event before checking the socket, the
# shutdown flag and the health timer again: bounds how long a closed socket
# keeps its greenlet and how soon a stopping server closes it. Owners wake
# often for their health timer; viewers, who are most of the thousands of
# sockets a process holds, less often (each wake-up costs CPU).
TICK = 1.0
VIEWER_TICK = 5.0


class _StreamGone(Exception):
    """The stream was deleted while watched."""


@sock.route("/ws/streams/<public_id>", bp=bp)
def stream_socket(ws, public_id: str) -> None:
    """Push one stream's status (and, to its owner, ingest health)."""
    stream = db.session.scalar(_stream_query(public_id))
    # A private stream's status and viewers only for whoever may watch it;
    # to anyone else it is as unknown as a stream that does not exist.
    if stream is None or not grants.allowed(stream):
        db.session.remove()
        ws.close(reason=POLICY_VIOLATION, message="Unknown stream.")
        return
    owner = _is_owner(stream)
    db.session.remove()  # no database connection held while the socket is open
    ws.max_message_size = MAX_CLIENT_MESSAGE  # clients have nothing to say here

    app = current_app._get_current_object()
    hub = get_hub(app)
    watching = hub.join(public_id)  # before reading the status: no event can slip between
    # Everyone but the creator counts as a viewer while the socket is open;
    # the creator's pages are kept up to date all the same.
    counter = viewers.get_counter(app)
    member = None
    if owner:
        counter.follow(public_id)
    else:
        member = counter.add(public_id)
    try:
        _relay(ws, public_id, watching, owner)
        if SHUTTING_DOWN.is_set():
            ws.close(reason=GOING_AWAY, message="Server restarting.")
    except _StreamGone:
        ws.close(reason=POLICY_VIOLATION, message="Unknown stream.")
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


def _relay(ws, public_id: str, watching: queue.Queue, owner: bool) -> None:
    status = _send_status(ws, public_id)
    next_health = time.monotonic()
    tick = TICK if owner else VIEWER_TICK
    while ws.connected and not SHUTTING_DOWN.is_set():
        _discard_input(ws)
        try:
            event = watching.get(timeout=tick)
        except queue.Empty:
            event = None
        if event is RESYNC:
            status = _send_status(ws, public_id)
        elif event is not None and event.get("type") in PUBLIC_EVENTS:
            if event["type"] == "status":
                status = event.get("status", status)
            _send(ws, event)
        if owner and status == "live" and time.monotonic() >= next_health:
            _send(ws, _health_event(public_id))
            next_health = time.monotonic() + HEALTH_INTERVAL


def _send_status(ws, public_id: str) -> str:
    """Send the stream's status as the database has it; returns the status."""
    try:
        stream = db.session.scalar(_stream_query(public_id))
        if stream is None:
            raise _StreamGone(public_id)
        event = fanout.status_message(
            events.stream_changed(stream, service.open_broadcast(db.session, stream))
        )
    finally:
        db.session.remove()
    _send(ws, event)
    # The count as it is now; changes follow as `viewers` events.
    public_id = event["stream"]
    _send(ws, viewers.viewers_message(public_id, viewers.count(current_app, public_id)))
    return event["status"]


def _send(ws, event: dict) -> None:
    # The server's clock travels with each event so pages can show the
    # elapsed time of a broadcast whatever their own clock says.
    ws.send(json.dumps({**event, "now": utcnow().isoformat()}))


def _health_event(public_id: str) -> dict:
    """What the media engine sees of the publisher, for the owner only."""
    try:
        publishers = _publisher_cache().get()
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

    def __init__(self, ttl: float):
        self._ttl = ttl
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._value: list[engines.IngestStats] | engines.EngineError = []
        self._rates = IngestRates()

    def get(self) -> list[engines.IngestStats]:
        with self._lock:  # one fetch at a time; the others wait and share it
            if time.monotonic() - self._at >= self._ttl:
                try:
                    fetched = engines.current().publishers()
                    self._value = self._rates.measure(fetched, time.monotonic())
                except engines.EngineError as exc:
                    self._value = exc  # a down engine is asked once per interval too
                self._at = time.monotonic()
            value = self._value
        if isinstance(value, engines.EngineError):
            raise value
        return value


class IngestRates:
    """The inbound bitrate of each publisher, measured from the bytes the
    engine has received between two samples. The engine's own figure is an
    average over 10-30 s and reads 0 for the first seconds of a healthy
    broadcast; until two samples exist the rate is unknown (None), never 0."""

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
            previous = self._last.get(key)
            kbps = None
            if previous is not None and now > previous[1] and publisher.bytes_in >= previous[0]:
                kbps = round((publisher.bytes_in - previous[0]) * 8 / 1000 / (now - previous[1]))
            elif publisher.kbps:
                kbps = publisher.kbps
            measured.append(dataclasses.replace(publisher, kbps=kbps))
        self._last = seen
        return measured


def _publisher_cache() -> _PublisherCache:
    extensions = current_app.extensions
    return extensions.setdefault("studio_publisher_cache", _PublisherCache(HEALTH_INTERVAL * 0.75))


def _discard_input(ws) -> None:
    """Clients have nothing to say on this socket; drop what they send so it
    cannot pile up. Raises ConnectionClosed once the client has gone."""
    while ws.receive(timeout=0) is not None:
        pass


def _is_owner(stream: Stream) -> bool:
    """The logged-in owner, on a same-origin socket (a page on another site
    cannot borrow the creator's cookie to read health)."""
    if not current_user.is_authenticated or current_user.id != stream.owner_id:
        return False
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def _stream_query(public_id: str):
    return select(Stream).where(Stream.public_id == public_id)
