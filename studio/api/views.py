"""JSON API v1: a creator's streams, authenticated by bearer API tokens.

Each view parses (done by the registry), calls the stream service, commits and
returns a response model. The rules live in `studio.streams.service`.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, url_for

from studio.api import openapi
from studio.api.registry import ApiRegistry
from studio.api.schemas import (
    BroadcastList,
    BroadcastOut,
    StreamCreate,
    StreamList,
    StreamOut,
    StreamUpdate,
)
from studio.extensions import csrf, db
from studio.models import Broadcast, Stream, User
from studio.streams import service, urls

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
api = ApiRegistry(bp, param_docs={"stream_id": "The stream's public id (`id` in a stream)."})


def stream_out(stream: Stream) -> StreamOut:
    """The owner's view of a stream (with the secret key in `ingest`)."""
    config = current_app.config
    return StreamOut(
        id=stream.public_id,
        title=stream.title,
        status=stream.status,
        disabled=stream.disabled,
        created_at=stream.created_at,
        ingest=urls.ingest(stream, config),
        playback=urls.playback(stream, config),
    )


def broadcast_out(broadcast: Broadcast) -> BroadcastOut:
    return BroadcastOut(
        id=broadcast.id,
        started_at=broadcast.started_at,
        ended_at=broadcast.ended_at,
        protocol=broadcast.protocol,
        end_reason=broadcast.end_reason,
        replay_url=urls.replay_url(broadcast, current_app.config),
    )


@api.route("/streams", methods=["POST"], body=StreamCreate, responses={201: StreamOut})
def create_stream(user: User, body: StreamCreate):
    """Create a stream.

    Returns the new stream with its publish settings; `Location` is its URL.
    """
    stream = service.create_stream(db.session, user, body.title)
    db.session.commit()
    return stream_out(stream), {"Location": url_for(".get_stream", stream_id=stream.public_id)}


@api.route("/streams", methods=["GET"], responses={200: StreamList})
def list_streams(user: User):
    """List your streams, newest first."""
    return StreamList(streams=[stream_out(s) for s in service.list_streams(db.session, user)])


@api.route("/streams/<stream_id>", methods=["GET"], responses={200: StreamOut})
def get_stream(user: User, stream_id: str):
    """Get one of your streams."""
    return stream_out(service.get_owned_stream(db.session, user, stream_id))


@api.route("/streams/<stream_id>", methods=["PATCH"], body=StreamUpdate, responses={200: StreamOut})
def update_stream(user: User, stream_id: str, body: StreamUpdate):
    """Change a stream's title and/or disabled flag.

    Disabling refuses publish from then on and drops a live publisher.
    """
    stream = service.get_owned_stream(db.session, user, stream_id)
    if "title" in body.model_fields_set:
        service.rename_stream(db.session, stream, body.title)
    if "disabled" in body.model_fields_set:
        service.set_disabled(db.session, stream, body.disabled)
    db.session.commit()
    return stream_out(stream)


@api.route("/streams/<stream_id>", methods=["DELETE"], responses={204: None})
def delete_stream(user: User, stream_id: str):
    """Delete a stream and its broadcasts; a live publisher is dropped."""
    service.delete_stream(db.session, service.get_owned_stream(db.session, user, stream_id))
    db.session.commit()


@api.route("/streams/<stream_id>/rotate-key", methods=["POST"], responses={200: StreamOut})
def rotate_key(user: User, stream_id: str):
    """Issue a new stream key.

    The old key is refused from now on and a publisher using it is dropped.
    """
    stream = service.rotate_key(db.session, service.get_owned_stream(db.session, user, stream_id))
    db.session.commit()
    return stream_out(stream)


@api.route("/streams/<stream_id>/broadcasts", methods=["GET"], responses={200: BroadcastList})
def list_broadcasts(user: User, stream_id: str):
    """List a stream's broadcasts (publish sessions), newest first."""
    stream = service.get_owned_stream(db.session, user, stream_id)
    return BroadcastList(
        broadcasts=[broadcast_out(b) for b in service.list_broadcasts(db.session, stream)]
    )


# --- the description of the API itself --------------------------------------


def document() -> dict:
    """The OpenAPI document of this API."""
    server = current_app.config["PUBLIC_URL"] + bp.url_prefix
    return openapi.build(api, prefix="", server_url=server)


@api.route("/openapi.json", methods=["GET"], responses={200: None}, auth=False, documented=False)
def openapi_json():
    """The OpenAPI 3.1 document."""
    return jsonify(document())


@api.route("/docs", methods=["GET"], responses={200: None}, auth=False, documented=False)
def docs():
    """The API reference for people."""
    page = render_template(
        "api/docs.html",
        spec=document(),
        operations=[op for op in api.operations if op.documented],
        base_url=current_app.config["PUBLIC_URL"] + bp.url_prefix,
        example_body=openapi.example_body,
        schema_rows=openapi.schema_rows,
        rate_limit=current_app.config.get("RATELIMIT_API"),
    )
    return Response(page, mimetype="text/html")
