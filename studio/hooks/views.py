"""Media-server callbacks, one URL per engine dialect (`/hooks/<dialect>`:
SRS 5 `http_hooks`, nginx-rtmp `on_publish`/`on_publish_done`).

Each media node's engine names itself in the query (`&node=<id>`; missing:
`default`): an accepted publish records the node on the stream, a draining
node's publish is refused, an unknown node is refused like a bad token. The
load balancer in front of the pool asks `/hooks/nodes/<id>/health`.

The engine's dialect turns a callback into a domain command; the rules live
in `studio.streams.service` and the upload pipeline. What the view decided
(event and outcome) is left on `g.hook` for the metrics.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass

import redis
from flask import Blueprint, abort, current_app, g, jsonify, request

from studio.core import refusals
from studio.core.commands import Command, Play, Publish, SegmentReady, Unpublish
from studio.errors import StudioError
from studio.extensions import csrf, db
from studio.media import engines, nodes, pipeline
from studio.redis_client import batched_writes, get_redis
from studio.storage import layout, signing
from studio.streams import direct_play, service

log = logging.getLogger(__name__)
bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)


@dataclass
class HookDecision:
    """What the studio made of one callback (the metrics' labels)."""

    dialect: str
    event: str = "other"
    # accepted / refused / invalid / unauthorized; None until decided.
    outcome: str | None = None
    # The media node the callback came from.
    node: str = nodes.DEFAULT_NODE


def _authorized() -> bool:
    expected = current_app.config["HOOK_TOKEN"]
    given = request.args.get("token", "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


@bp.post("/<dialect>")
def callback(dialect: str):
    """Every callback of the engine `dialect`. SRS reads `{"code": 0}` as
    accept and a non-zero code as refuse; nginx-rtmp any non-2xx as refuse."""
    callbacks = engines.dialect(dialect)
    if callbacks is None:
        abort(404)
    g.hook = decision = HookDecision(callbacks.name)
    limit = request.max_content_length
    if limit is None or (request.content_length or 0) <= limit:
        decision.event = callbacks.event(request)  # a body too large is never read
    if not _authorized():
        return _reply(decision, "unauthorized", 403, "Invalid or missing hook token.")
    try:
        decision.node = _known_node(request.args.get("node"))
    except nodes.UnknownNode as exc:
        return _reply(decision, "unauthorized", 403, exc.message)
    except StudioError as exc:
        return _reply(decision, "invalid", 400, f"{exc.message} {exc.fields.get('node', '')}")
    try:
        command = callbacks.parse(request)
    except engines.CallbackError as exc:
        return _reply(decision, "invalid", 400, str(exc))
    refusal = _decide(command, decision.node)
    if refusal is not None:
        what = "Play" if isinstance(command, Play) else "Publish"
        return _reply(decision, "refused", callbacks.refusal_status, f"{what} refused: {refusal}.")
    decision.outcome = "accepted"
    return jsonify(code=0), 200


def _reply(decision: HookDecision, outcome: str, status: int, message: str):
    decision.outcome = outcome
    # The body's code is what SRS reads; 403 for a refusal on every dialect.
    code = 403 if outcome == "refused" else status
    return jsonify(code=code, error=message), status


def _known_node(value: str | None) -> str:
    """The node a callback names: a configured one is taken on its word (no
    query for the many segment callbacks), any other must have a row.
    Raises ValidationError (malformed) or UnknownNode."""
    node_id = nodes.DEFAULT_NODE if value is None else nodes.clean_node_id(value)
    if any(node["id"] == node_id for node in nodes.configured(current_app.config)):
        return node_id
    return nodes.get(db.session, node_id).id


def _decide(command: Command, node_id: str) -> str | None:
    """Carry out the command; the reason a publish is refused, else None."""
    if isinstance(command, Publish):
        return _on_publish(command, node_id)
    if isinstance(command, Unpublish):
        service.end_broadcast(
            db.session, command.stream, command.client_id, command.server_id, node_id=node_id
        )
        _commit()
    elif isinstance(command, SegmentReady):
        # Handing it on is always safe to accept (engines ignore failures here).
        pipeline.segment_ready(get_redis(), command, node_id)
    elif isinstance(command, Play):
        return direct_play.play_refusal(db.session, command, current_app.config["SECRET_KEY"])
    # Anything else (connect, close, stop, dvr): nothing to decide.
    return None


def _on_publish(command: Publish, node_id: str) -> str | None:
    if command.app != "live":
        return _refused(command, f"unknown app '{command.app}'")
    redeemed = False
    if command.ticket:
        try:
            redeemed = service.redeem_publish_ticket(
                get_redis(), command.stream, command.ticket, command.client_id
            )
        except redis.RedisError:
            log.exception("publish ticket of stream=%s not checked", command.stream)
        if not redeemed:
            return _refused(command, "invalid or used publish ticket")
    attempt = service.PublishAttempt(
        stream_name=command.stream,
        secret=command.secret,
        client_id=command.client_id,
        protocol=command.protocol,
        server_id=command.server_id,
        service_id=command.service_id,
        ip=command.ip,
        ticket_redeemed=redeemed,
        node_id=node_id,
    )
    limits = service.PublishLimits(int(current_app.config.get("MAX_LIVE_PER_USER", 0) or 0))
    # A draining node is refused in the statement that locks the stream. A
    # configured node seen for the first time is a row from here on; it is
    # committed with the broadcast (a refusal rolls both back: the next
    # callback or reconcile pass adds it again).
    configured = nodes.configured(current_app.config)
    try:
        broadcast = service.start_broadcast(db.session, attempt, limits, configured)
    except service.PublishRefused as exc:
        db.session.rollback()
        _record_refusal(command, exc.kind)
        return _refused(command, exc.reason)
    # Read before commit: afterwards the row is expired and reading its id
    # would cost another connection checkout and query.
    broadcast_id = broadcast.id
    _commit()
    log.info(
        "publish accepted stream=%s client=%s broadcast=%s node=%s",
        command.stream,
        command.client_id,
        broadcast_id,
        node_id,
    )
    return None


def _commit() -> None:
    """Commit; what follows it in Redis (the status message, queued jobs)
    goes in one round trip."""
    with batched_writes():
        db.session.commit()


def _record_refusal(command: Publish, kind: str) -> None:
    """Tell the creator (stream page, API, `publish.refused` webhook) at a
    bounded rate; a failure here never changes the refusal."""
    if not kind:
        return
    try:
        refusals.record_refused_publish(db.session, get_redis(), command.stream, command.ip, kind)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("refused publish of stream=%s not recorded", command.stream)


def _refused(command: Publish, reason: str) -> str:
    log.info(
        "publish refused stream=%s client=%s reason=%s",
        command.stream,
        command.client_id,
        reason,
    )
    return reason


@bp.get("/nodes/<node_id>/health")
def node_health(node_id: str):
    """The load balancer's check of a media node: 200 with its live count
    while it takes publishers, 503 while it drains or when nobody knows it."""
    try:
        node = nodes.view(db.session, node_id)
    except nodes.UnknownNode as exc:
        return jsonify(node=None, error=exc.message), 503
    except StudioError as exc:
        return jsonify(node=None, error=exc.message, fields=exc.fields), 400
    finally:
        db.session.rollback()
    return jsonify(node.as_dict()), 503 if node.draining else 200


@bp.get("/cdn-auth")
def cdn_auth():
    """The development and test CDN edge's check of a private object
    (nginx `auth_request`, with the viewer's Cookie header and the asked
    path in X-Original-URI): 204 if a Cloud-CDN-Cookie signed with the
    studio's key grants the object's URL now, else 403 — what Cloud CDN
    itself decides in production, with the same code (studio.storage.signing)."""
    if not _authorized():
        return "", 403
    path = request.headers.get("X-Original-URI", "").split("?", 1)[0]
    if not path.startswith(f"/{layout.PRIVATE_ROOT}/") or "/../" in path or "\\" in path:
        return "", 403
    try:
        keys = [signing.SigningKey.from_config(current_app.config)]
    except signing.SigningNotConfigured:
        log.error("a private object was asked for, and no CDN signing key is set")
        return "", 403
    url = layout.public_url(current_app.config["CDN_URL"], path.lstrip("/"))
    now = time.time()
    cookies = signing.cookie_values(request.headers.get("Cookie", ""))
    if any(signing.verify(value, url, keys, now) for value in cookies):
        return "", 204
    return "", 403
