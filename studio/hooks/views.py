"""Media-server callbacks: SRS 5 `http_hooks` (JSON, one URL for every event)
and nginx-rtmp `on_publish`/`on_publish_done` (form-encoded).

Both are translated into the same service calls; the rules live in
`studio.streams.service`.
"""

from __future__ import annotations

import hmac
import logging

import redis
from flask import Blueprint, current_app, jsonify, request

from studio.extensions import csrf, db
from studio.hooks import parsing
from studio.redis_client import get_redis
from studio.streams import service

log = logging.getLogger(__name__)
bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)


def _authorized() -> bool:
    expected = current_app.config["HOOK_TOKEN"]
    given = request.args.get("token", "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _error(status: int, message: str):
    return jsonify(code=status, error=message), status


@bp.post("/srs")
def srs():
    """Every SRS 5 callback; reply `{"code": 0}` to accept, non-zero to refuse."""
    if not _authorized():
        return _error(403, "Invalid or missing hook token.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "Body must be a JSON object.")
    try:
        callback = parsing.srs_callback(body)
    except parsing.CallbackError as exc:
        return _error(400, str(exc))
    return _dispatch(callback)


@bp.post("/nginx-rtmp")
def nginx_rtmp():
    """nginx-rtmp `on_publish`/`on_publish_done`; 2xx accepts, 403 refuses."""
    if not _authorized():
        return _error(403, "Invalid or missing hook token.")
    try:
        callback = parsing.nginx_callback(request.form)
    except parsing.CallbackError as exc:
        return _error(400, str(exc))
    reply, status = _dispatch(callback)
    if callback.action == "on_publish" and reply.get_json().get("code") != 0:
        status = 403  # nginx-rtmp refuses on any non-2xx status
    return reply, status


def _dispatch(callback: parsing.Callback):
    if callback.action == "on_publish":
        return _on_publish(callback)
    if callback.action == "on_unpublish":
        service.end_broadcast(db.session, callback.stream, callback.client_id, callback.server_id)
        db.session.commit()
        return jsonify(code=0), 200
    if callback.action == "on_hls":
        return _on_hls(callback)
    # on_connect, on_close, on_play, on_stop, on_dvr: nothing to decide.
    return jsonify(code=0), 200


def _on_publish(callback: parsing.Callback):
    if callback.app != "live":
        return _refuse(callback, f"unknown app '{callback.app}'")
    redeemed = False
    if callback.ticket:
        try:
            redeemed = service.redeem_publish_ticket(
                get_redis(), callback.stream, callback.ticket, callback.client_id
            )
        except redis.RedisError:
            log.exception("publish ticket of stream=%s not checked", callback.stream)
        if not redeemed:
            return _refuse(callback, "invalid or used publish ticket")
    attempt = service.PublishAttempt(
        stream_name=callback.stream,
        secret=callback.secret,
        client_id=callback.client_id,
        protocol=callback.protocol,
        server_id=callback.server_id,
        service_id=callback.service_id,
        ip=callback.ip,
        ticket_redeemed=redeemed,
    )
    try:
        broadcast = service.start_broadcast(db.session, attempt)
    except service.PublishRefused as exc:
        db.session.rollback()
        return _refuse(callback, exc.reason)
    # Read before commit: afterwards the row is expired and reading its id
    # would cost another connection checkout and query.
    broadcast_id = broadcast.id
    db.session.commit()
    log.info(
        "publish accepted stream=%s client=%s broadcast=%s",
        callback.stream,
        callback.client_id,
        broadcast_id,
    )
    return jsonify(code=0), 200


def _refuse(callback: parsing.Callback, reason: str):
    log.info(
        "publish refused stream=%s client=%s reason=%s",
        callback.stream,
        callback.client_id,
        reason,
    )
    return jsonify(code=403, error=f"Publish refused: {reason}."), 200


def _on_hls(callback: parsing.Callback):
    """A segment is complete on disk (SRS). Handing it to the upload pipeline
    is the media pipeline's job; accepting is always safe (SRS ignores failures)."""
    handler = current_app.extensions.get("studio_on_hls")
    if handler is not None:
        handler(callback)
    return jsonify(code=0), 200
