"""JSON API v1: a creator's streams, authenticated by bearer API tokens.

Routes are declared with flask-openapi3, which validates each view's `path`
and `body` parameters with their pydantic models and documents them in the
OpenAPI document. Before that, the blueprint authenticates the token and checks
that a body is a JSON object. Each view calls the stream service, commits and
returns a response model. The rules live in `studio.streams.service`.
"""

from __future__ import annotations

import re

from flask import Response, current_app, g, jsonify, render_template, request, url_for
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel
from sqlalchemy import Row

from studio import security
from studio import viewers as live_viewers
from studio.api import openapi
from studio.api.auth import bearer_stream, bearer_user
from studio.api.errors import body_model, error_reply, json_object_problem
from studio.api.schemas import (
    PUBLIC_ID_PATTERN,
    BroadcastList,
    BroadcastOut,
    RefusedPublishOut,
    ShareLinkList,
    ShareLinkOut,
    ShareLinkPath,
    StreamCreate,
    StreamList,
    StreamOut,
    StreamPath,
    StreamUpdate,
)
from studio.core import refusals
from studio.errors import NotFound, StudioError
from studio.extensions import csrf, db
from studio.media import engines
from studio.models import Broadcast, PublishRefusal, ShareLink, Stream, User
from studio.streams import access, reconnect, service, urls
from studio.transactions import end_read_only, read_only

INVALID_BODY = openapi.error_response(
    "Invalid input (a NUL character, a lone surrogate or JSON nested too deeply "
    "anywhere in the path, query or body is always refused); `fields` names each bad "
    "field of a body. Nothing was changed."
)
NOT_FOUND = openapi.error_response(
    "No such stream among yours (another creator's stream is 404 too)."
)


def _operation_id(*, name: str, path: str, method: str) -> str:
    # The view's name, as clients generated from the document have always called it.
    return name


bp = APIBlueprint(
    "api",
    __name__,
    url_prefix="/api/v1",
    abp_tags=[Tag(name="streams", description="Your live streams and their broadcasts.")],
    abp_security=[{"bearer": []}],
    # Every operation: the input guard refuses bad text in the path and query too.
    abp_responses={
        400: INVALID_BODY,
        401: openapi.error_response("Missing, unknown or revoked API token."),
        429: openapi.error_response(
            "Too many requests with this token (STUDIO_RATELIMIT_API), or with invalid "
            "tokens from this address (STUDIO_RATELIMIT_API_AUTH_FAILURES); see Retry-After."
        ),
    },
    operation_id_callback=_operation_id,
)
csrf.exempt(bp)

# The description of the API itself is public.
# A stream's chat is public too (studio/api/chat.py).
PUBLIC_ENDPOINTS = {"api.openapi_json", "api.docs", "api.chat_history"}
PUBLIC_ID = re.compile(PUBLIC_ID_PATTERN)


def _reaches_a_view() -> bool:
    # Flask answers OPTIONS itself (the Allow header) without running the view:
    # like the description of the API, that needs no token and has no body.
    return request.method != "OPTIONS" and request.endpoint not in PUBLIC_ENDPOINTS


def _reads_one_stream() -> bool:
    # `get_stream` of a well-formed id: its stream is read with the token, in
    # one query on a connection of its own (`bearer_stream`); it never opens
    # the session. Any other id is refused by the view's path validation.
    stream_id = (request.view_args or {}).get("stream_id", "")
    return request.endpoint == "api.get_stream" and bool(PUBLIC_ID.fullmatch(stream_id))


@bp.before_request
def before_view() -> Response | None:
    """What every API request reaching a view goes through, in this order:
    autocommit for a GET, the token, a JSON object as the body. Whether the
    request reaches a view and reads one stream is worked out once here."""
    if not _reaches_a_view():
        return None
    one_stream = _reads_one_stream()
    read_in_autocommit(one_stream)
    refusal = authenticate(one_stream)
    return refusal if refusal is not None else require_json_object()


def read_in_autocommit(one_stream: bool) -> None:
    """A GET of the API only reads: its statements run in autocommit, which
    spares a BEGIN and a ROLLBACK (two PostgreSQL round trips); each sees the
    latest committed data. A write in such a request would not be atomic, so
    it is refused (`studio.transactions.read_only`). `get_stream` reads on a
    connection of its own, likewise in autocommit."""
    if request.method in ("GET", "HEAD") and not one_stream:
        read_only(db.session())


@bp.teardown_request
def end_reading(exc: BaseException | None) -> None:
    if db.session.registry.has():  # else the request never opened the session
        end_read_only(db.session())


def authenticate(one_stream: bool) -> Response | None:
    """Refuse a request without a valid bearer token (401); remember its owner
    (`get_stream`: the stream it asks for, read with the token)."""
    header = request.headers.get("Authorization", "")
    if one_stream:
        g.api_stream = bearer_stream(header, request.view_args["stream_id"])
        authenticated = g.api_stream is not None
    else:
        g.api_user = bearer_user(header)
        authenticated = g.api_user is not None
    if not authenticated:
        return error_reply(
            401,
            "Missing or invalid API token. Send 'Authorization: Bearer lst_...'; "
            "create a token on the API tokens page.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    return None


def require_json_object() -> Response | None:
    """Refuse a body that is not a JSON object, for views that take a body (400)."""
    if body_model() is None:
        return None
    problem = json_object_problem()
    return error_reply(400, problem) if problem else None


@bp.errorhandler(StudioError)
def studio_error(exc: StudioError) -> Response:
    """A rule refused the change: roll back and answer in the API's error format."""
    db.session.rollback()
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return error_reply(exc.status, exc.message, exc.fields, headers)


def caller() -> User:
    """The owner of the token this request was authenticated with."""
    return g.api_user


def reply(
    model: BaseModel | None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A response model as JSON (None: an empty 204); never cached, it holds keys."""
    if model is None:
        response = Response(status=204)
    else:
        response = Response(model.model_dump_json(), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    return response


def stream_out(
    stream: Stream | Row,
    viewers: int | None = None,
    last_refusals: dict[int, PublishRefusal | None] | None = None,
) -> StreamOut:
    """The owner's view of a stream (with the secret key in `ingest`): a
    `Stream`, or a row with its columns (`get_stream`); `viewers` read from
    Redis and its last refused publish from the database unless the caller
    has them already (`last_refusals` by stream row id)."""
    config = current_app.config
    if viewers is None:
        viewers = live_viewers.count(current_app, stream.public_id)
    if last_refusals is None:
        last_refusals = refusals.last_refusals(db.session, [stream.id])
    refusal = last_refusals.get(stream.id)
    return StreamOut(
        id=stream.public_id,
        title=stream.title,
        status=stream.status,
        disabled=stream.disabled,
        visibility=stream.visibility,
        reconnect_window=stream.reconnect_window,
        reconnect_deadline=stream.reconnect_deadline if stream.status == "reconnecting" else None,
        created_at=stream.created_at,
        thumbnail_url=urls.thumbnail_url(stream, config),
        viewers=viewers,
        node=urls.live_node(stream),
        ingest=urls.ingest(stream, config, engines.current().ingest_protocols),
        playback=urls.playback(stream, config, engines.current().playback_protocols),
        last_refused_publish=refused_out(refusal) if refusal else None,
    )


def refused_out(refusal: PublishRefusal) -> RefusedPublishOut:
    return RefusedPublishOut(
        refused_at=refusal.refused_at, address=refusal.ip or None, reason=refusal.reason
    )


def broadcast_out(broadcast: Broadcast) -> BroadcastOut:
    return BroadcastOut(
        id=broadcast.id,
        started_at=broadcast.started_at,
        ended_at=broadcast.ended_at,
        protocol=broadcast.protocol,
        end_reason=broadcast.end_reason,
        replay_url=urls.replay_url(broadcast, current_app.config),
        thumbnail_url=urls.broadcast_thumbnail_url(broadcast, current_app.config),
        peak_viewers=broadcast.peak_viewers,
    )


@bp.post(
    "/streams",
    responses={201: StreamOut, 400: INVALID_BODY},
    description="Returns the new stream with its publish settings; `Location` is its URL.",
)
def create_stream(body: StreamCreate):
    """Create a stream."""
    stream = service.create_stream(db.session, caller(), body.title, body.reconnect_window)
    access.set_visibility(db.session, stream, body.visibility)
    db.session.commit()
    location = url_for(".get_stream", stream_id=stream.public_id)
    return reply(stream_out(stream), 201, {"Location": location})


@bp.get("/streams", responses={200: StreamList})
def list_streams():
    """List your streams, newest first."""
    streams = service.list_streams(db.session, caller())
    counts = live_viewers.counts(current_app, [s.public_id for s in streams])
    last = refusals.last_refusals(db.session, [s.id for s in streams])
    return reply(StreamList(streams=[stream_out(s, counts[s.public_id], last) for s in streams]))


@bp.get("/streams/<stream_id>", responses={200: StreamOut, 404: NOT_FOUND})
def get_stream(path: StreamPath):
    """Get one of your streams."""
    # Read with the token, as one row (`authenticate`: `bearer_stream`).
    stream = g.pop("api_stream")
    if stream.id is None:
        raise NotFound("Stream not found.")
    reads = security.api_reads()
    viewers = reads[0] if reads and isinstance(reads[0], int) else None
    refusal = None
    if stream.refused_at is not None:  # the newest refused publish, in the same row
        refusal = PublishRefusal(
            refused_at=stream.refused_at, ip=stream.refused_ip, reason=stream.refused_reason
        )
    return reply(stream_out(stream, viewers, last_refusals={stream.id: refusal}))


def _queue_viewer_count(pipeline) -> None:
    # The viewer count rides on the rate-limit call (one Redis round trip);
    # read before the stream is known to be the caller's, shown only if it is.
    public_id = (request.view_args or {}).get("stream_id", "")
    if PUBLIC_ID.fullmatch(public_id):
        live_viewers.queue_count(pipeline, current_app, public_id)


security.read_with_limits("api.get_stream", _queue_viewer_count)


@bp.patch(
    "/streams/<stream_id>",
    responses={200: StreamOut, 400: INVALID_BODY, 404: NOT_FOUND},
    description=(
        "Disabling refuses publish from then on, ends the broadcast under way and drops a "
        "live publisher."
    ),
)
def update_stream(path: StreamPath, body: StreamUpdate):
    """Change a stream's title, disabled flag, visibility and/or reconnect window."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    if "title" in body.model_fields_set:
        service.rename_stream(db.session, stream, body.title)
    if "reconnect_window" in body.model_fields_set:
        reconnect.set_reconnect_window(db.session, stream, body.reconnect_window)
    if "disabled" in body.model_fields_set:
        service.set_disabled(db.session, stream, body.disabled)
    if "visibility" in body.model_fields_set:
        access.set_visibility(db.session, stream, body.visibility)
    db.session.commit()
    return reply(stream_out(stream))


@bp.delete("/streams/<stream_id>", responses={204: None, 404: NOT_FOUND})
def delete_stream(path: StreamPath):
    """Delete a stream and its broadcasts; a live publisher is dropped."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    service.delete_stream(db.session, stream)
    db.session.commit()
    return reply(None)


@bp.post(
    "/streams/<stream_id>/rotate-key",
    responses={200: StreamOut, 404: NOT_FOUND},
    description=(
        "The old key is refused from now on: the broadcast under way (live or reconnecting) "
        "ends and a publisher using the old key is dropped."
    ),
)
def rotate_key(path: StreamPath):
    """Issue a new stream key."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    stream = service.rotate_key(db.session, stream)
    db.session.commit()
    return reply(stream_out(stream))


@bp.post(
    "/streams/<stream_id>/end",
    responses={200: StreamOut, 404: NOT_FOUND},
    description=(
        "Ends the broadcast under way now, live or reconnecting (`end_reason` `stopped`), "
        "without waiting out the reconnect window; a live publisher is dropped. "
        "Nothing changes when no broadcast is under way."
    ),
)
def end_broadcast(path: StreamPath):
    """End the stream's broadcast now."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    service.end_current_broadcast(db.session, stream, "stopped")
    db.session.commit()
    return reply(stream_out(stream))


@bp.get("/streams/<stream_id>/broadcasts", responses={200: BroadcastList, 404: NOT_FOUND})
def list_broadcasts(path: StreamPath):
    """List a stream's broadcasts (publish sessions), newest first."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    broadcasts = service.list_broadcasts(db.session, stream)
    return reply(BroadcastList(broadcasts=[broadcast_out(b) for b in broadcasts]))


def share_link_out(link: ShareLink, stream: Stream) -> ShareLinkOut:
    return ShareLinkOut(
        id=link.id, url=urls.share_url(stream, link, current_app.config), created_at=link.created_at
    )


SHARE_NOT_FOUND = openapi.error_response("No such stream among yours, or no such share link.")


@bp.get("/streams/<stream_id>/share-links", responses={200: ShareLinkList, 404: NOT_FOUND})
def list_share_links(path: StreamPath):
    """List a stream's share links."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    links = access.list_share_links(db.session, stream)
    return reply(ShareLinkList(share_links=[share_link_out(link, stream) for link in links]))


@bp.post(
    "/streams/<stream_id>/share-links",
    responses={201: ShareLinkOut, 400: INVALID_BODY, 404: NOT_FOUND},
    description=(
        "Whoever opens the returned `url` can watch the private stream (page, player, "
        f"replays) until the link is revoked. At most {access.MAX_SHARE_LINKS} per stream."
    ),
)
def create_share_link(path: StreamPath):
    """Create a share link."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    link = access.create_share_link(db.session, stream)
    db.session.commit()
    return reply(share_link_out(link, stream), 201)


@bp.delete(
    "/streams/<stream_id>/share-links/<int:link_id>",
    responses={204: None, 404: SHARE_NOT_FOUND},
    description=(
        "The link stops working at once: its holders' next page or cookie renewal is "
        "refused (a signed CDN cookie already issued lasts at most STUDIO_CDN_COOKIE_TTL)."
    ),
)
def revoke_share_link(path: ShareLinkPath):
    """Revoke a share link."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    access.revoke_share_link(db.session, access.get_share_link(db.session, stream, path.link_id))
    db.session.commit()
    return reply(None)


# --- the description of the API itself --------------------------------------


def document() -> dict:
    """The OpenAPI document of this API."""
    prefix = bp.url_prefix or ""
    server = current_app.config["PUBLIC_URL"] + prefix
    return openapi.document(current_app, prefix=prefix, server_url=server)


@bp.get("/openapi.json", doc_ui=False)
def openapi_json():
    """The OpenAPI 3.1 document."""
    return jsonify(document())


@bp.get("/docs", doc_ui=False)
def docs():
    """The API reference for people."""
    spec = document()
    page = render_template(
        "api/docs.html",
        spec=spec,
        operations=openapi.operations(spec),
        base_url=current_app.config["PUBLIC_URL"] + (bp.url_prefix or ""),
        schema_rows=openapi.schema_rows,
        rate_limit=current_app.config.get("RATELIMIT_API"),
    )
    return Response(page, mimetype="text/html")
