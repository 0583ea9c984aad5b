"""Browser ingest over a websocket: `/ws/ingest/<public_id>`.

The go-live page records the camera with MediaRecorder (H.264 + Opus) and
sends the chunks as binary messages. Each socket drives one ffmpeg child that
publishes to the media engine by RTMP with a single-use publish ticket (see
`studio.media.relay`), so the engine's on_publish/on_unpublish callbacks and
the status machine apply unchanged. ffmpeg's lifetime follows the socket.

Only the stream's owner (session cookie, same origin) may open it, and only
one ingest per stream runs at a time (a Redis lock with a TTL refreshed while
the socket lives). Refusals before the upgrade are plain HTTP statuses; once
upgraded, the socket is closed with a code and a sentence the page shows.

Server → page text messages (JSON): `{"type": "ready"}` once ffmpeg runs,
then `{"type": "stats", "received": bytes, "forwarded": bytes, "buffered":
bytes}` every few seconds. Page → server: binary media chunks, and
optionally `{"type": "stop"}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import redis as redis_lib
from flask import Blueprint, abort, current_app, g, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from studio.errors import NotFound
from studio.extensions import db, sock
from studio.input_guard import BadInput, load_json
from studio.media import relay as relays
from studio.redis_client import get_redis
from studio.streams import service

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)

LOCK_TTL = 15.0  # seconds; a dead worker's lock frees itself after this
LOCK_REFRESH = 5.0
STATS_INTERVAL = 2.0
TICK = 0.5
CONTAINERS = {"matroska": "matroska", "mp4": "mov"}
# Bounds per socket (app config keys of the same name override them): a
# MediaRecorder chunk of 500 ms at 8 Mbit/s is 0.5 MB; 8 MB waiting for
# ffmpeg is ~10 s of 1080p, beyond which ffmpeg is not keeping up.
INGEST_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
INGEST_BUFFER_BYTES = 8 * 1024 * 1024
INGEST_WRITE_TIMEOUT = 10.0
INGEST_IDLE_TIMEOUT = 15.0

# Close codes (4000-4999 are ours) with the sentence the page shows.
NORMAL = 1000
TRY_AGAIN = 1013
INTERNAL = 1011
BUSY = 4409
REFUSED = 4403
UNREACHABLE = 4502
IDLE = 4408
BAD_MESSAGE = 4400


@dataclass(frozen=True)
class Ending:
    """Why the socket ends: a close code and a message for the creator."""

    code: int
    message: str
    failed: bool = False


class IngestLock:
    """One ingest per stream across every web worker: a Redis key holding a
    random token, with a TTL the holder refreshes while its socket lives."""

    _REFRESH = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
    )
    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('del', KEYS[1]) else return 0 end"
    )

    def __init__(self, redis, public_id: str, ttl: float = LOCK_TTL):
        self.redis = redis
        self.key = f"studio:ingest:{public_id}"
        self.token = secrets.token_hex(16)
        self.ttl_ms = int(ttl * 1000)

    def acquire(self) -> bool:
        return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def refresh(self) -> bool:
        """False only when another holder has the lock. Redis being briefly
        unreachable does not end a live broadcast: the engine still refuses
        a second publisher for the stream."""
        try:
            return bool(self.redis.eval(self._REFRESH, 1, self.key, self.token, self.ttl_ms))
        except redis_lib.RedisError:
            log.warning("could not refresh %s; keeping the ingest", self.key)
            return True

    def release(self) -> None:
        try:
            self.redis.eval(self._RELEASE, 1, self.key, self.token)
        except Exception:
            log.warning("could not release %s; it expires by itself", self.key)


@bp.before_request
def _owner_only():
    """Refuse before the upgrade: anonymous 401, anyone but the owner 404
    (no existence leak), another site's page 403."""
    if not current_user.is_authenticated:
        abort(401, "Log in to go live.")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc not in _allowed_hosts():
        abort(403, "Cross-origin ingest is not allowed.")
    public_id = (request.view_args or {}).get("public_id", "")
    stream = _owned_or_none(public_id)
    if stream is None:
        abort(404, "Stream not found.")
    g.ingest_stream = {
        "public_id": stream.public_id,
        "disabled": stream.disabled,
        # A reconnecting stream waits for a publisher: this page may continue it.
        "busy": stream.status != "reconnecting"
        and service.open_broadcast(db.session, stream) is not None,
    }
    db.session.remove()  # no database connection held while the socket is open


def _owned_or_none(public_id: str):
    try:
        return service.get_owned_stream(db.session, current_user, public_id)
    except NotFound:
        return None


def _allowed_hosts() -> set[str]:
    return {request.host, urlsplit(current_app.config["PUBLIC_URL"]).netloc}


@sock.route("/ws/ingest/<public_id>", bp=bp)
def ingest_socket(ws, public_id: str) -> None:
    """Relay the browser's recording into the media engine until either side ends."""
    stream = g.ingest_stream
    ws.max_message_size = _setting("INGEST_MAX_MESSAGE_BYTES")
    if stream["disabled"]:
        ws.close(REFUSED, "This stream is disabled; enable it on the stream page first.")
        return
    if stream["busy"]:
        ws.close(BUSY, "This stream is already live from another source (OBS or another tab).")
        return
    lock = IngestLock(get_redis(), public_id)
    try:
        acquired = lock.acquire()
    except redis_lib.RedisError:
        log.exception("ingest lock unavailable for stream=%s", public_id)
        ws.close(INTERNAL, "The studio cannot start the broadcast right now; try again shortly.")
        return
    if not acquired:
        ws.close(BUSY, "This stream is already being sent from another tab or device.")
        return
    try:
        _run(ws, stream, lock, request.args.get("container", "matroska"))
    finally:
        lock.release()


def _run(ws, stream: dict, lock: IngestLock, container: str) -> None:
    if container not in CONTAINERS:
        ws.close(BAD_MESSAGE, f"Unknown container '{container[:20]}' (matroska or mp4).")
        return
    config = current_app.config
    try:
        ticket = service.mint_publish_ticket(get_redis(), stream["public_id"])
    except redis_lib.RedisError:
        log.exception("no publish ticket for stream=%s", stream["public_id"])
        ws.close(INTERNAL, "The studio cannot start the broadcast right now; try again shortly.")
        return
    url = relays.publish_url(config["INGEST_RTMP_URL"], stream["public_id"], ticket)
    argv = relays.ffmpeg_argv(url, CONTAINERS[container], config.get("FFMPEG_BIN", "ffmpeg"))
    try:
        relay = relays.FfmpegRelay(
            argv,
            max_buffer_bytes=_setting("INGEST_BUFFER_BYTES"),
            write_timeout=_setting("INGEST_WRITE_TIMEOUT"),
            redact=[ticket, quote(ticket, safe="")],
        )
    except OSError:
        log.exception("could not start ffmpeg for stream=%s", stream["public_id"])
        ws.close(INTERNAL, "The studio cannot start its media relay; try again shortly.")
        return
    log.info("websocket ingest started stream=%s ffmpeg_pid=%d", stream["public_id"], relay.pid)
    ending: Ending | None = None
    try:
        ws.send(json.dumps({"type": "ready"}))
        ending = _pump(ws, relay, lock)
    except ConnectionClosed:
        ending = None  # the page went away or closed the socket: a normal stop
    finally:
        # The socket first: its reader must stop taking data nobody will use.
        if ending is not None:
            _close(ws, ending)
        code = relay.close(drain=ending is None or not ending.failed)
        _log_end(stream["public_id"], relay, code, ending)


def _pump(ws, relay: relays.FfmpegRelay, lock: IngestLock) -> Ending:
    """Move chunks from the socket to ffmpeg; returns why it stopped."""
    idle_timeout = _setting("INGEST_IDLE_TIMEOUT")
    now = time.monotonic()
    last_media, next_refresh, next_stats = now, now + LOCK_REFRESH, now + STATS_INTERVAL
    while True:
        message = ws.receive(timeout=TICK)
        now = time.monotonic()
        if isinstance(message, bytes | bytearray) and message:
            try:
                relay.feed(bytes(message))
            except relays.RelayOverflow:
                return Ending(
                    TRY_AGAIN,
                    "The server cannot forward your video fast enough; "
                    "lower the quality and go live again.",
                    failed=True,
                )
            last_media = now
        elif isinstance(message, str):
            try:
                if _is_stop(message):
                    return Ending(NORMAL, "Stopped.")
            except BadInput as exc:
                return Ending(BAD_MESSAGE, f"Message refused: {exc}", failed=True)
        if relay.exited():
            return _exit_ending(relay)
        if relay.stalled(now):
            return Ending(TRY_AGAIN, "The media server stopped accepting video.", failed=True)
        if now - last_media > idle_timeout:
            return Ending(IDLE, f"No video arrived for {idle_timeout:.0f} s.", failed=True)
        if now >= next_refresh:
            if not lock.refresh():
                return Ending(BUSY, "Another tab or device took over this stream.", failed=True)
            next_refresh = now + LOCK_REFRESH
        if now >= next_stats:
            ws.send(json.dumps(_stats(relay)))
            next_stats = now + STATS_INTERVAL


def _setting(name: str):
    return current_app.config.get(name, globals()[name])


def _is_stop(message: str) -> bool:
    """Whether a text message asks to stop; other text is ignored. Raises
    BadInput for text no surface accepts (NUL, lone surrogates, deep nesting)."""
    try:
        return load_json(message).get("type") == "stop"
    except BadInput:
        raise
    except (ValueError, AttributeError):
        return False


def _stats(relay: relays.FfmpegRelay) -> dict:
    return {
        "type": "stats",
        "received": relay.bytes_in,
        "forwarded": relay.bytes_written,
        "buffered": relay.buffered_bytes,
    }


def _exit_ending(relay: relays.FfmpegRelay) -> Ending:
    """Explain why ffmpeg ended by itself (its stderr says how)."""
    tail = relay.stderr_tail().lower()
    if "connection refused" in tail or "cannot open connection" in tail:
        return Ending(UNREACHABLE, "The media server is unreachable.", failed=True)
    if "invalid data found" in tail or "error opening input" in tail:
        return Ending(
            BAD_MESSAGE,
            "The recording could not be read (H.264 + Opus in Matroska or MP4 expected).",
            failed=True,
        )
    if relay.bytes_written == 0 or "input/output error" in tail or "error number" in tail:
        return Ending(
            REFUSED,
            "The media server refused the stream key (rotated, stream disabled, or already live).",
            failed=True,
        )
    return Ending(INTERNAL, "The media server connection ended.", failed=True)


def _log_end(public_id: str, relay: relays.FfmpegRelay, code: int, ending: Ending | None) -> None:
    if ending is not None and ending.failed:
        log.warning(
            "websocket ingest failed stream=%s ffmpeg_pid=%d exit=%s reason=%r\n%s",
            public_id,
            relay.pid,
            code,
            ending.message,
            relay.stderr_tail(),
        )
    else:
        log.info(
            "websocket ingest ended stream=%s ffmpeg_pid=%d exit=%s bytes=%d",
            public_id,
            relay.pid,
            code,
            relay.bytes_in,
        )


def _close(ws, ending: Ending) -> None:
    with contextlib.suppress(ConnectionClosed):
        ws.close(ending.code, ending.message)
