"""JSON API v1: a stream's multistream targets (routes on the API blueprint,
like the go-live routes on the streams one). The rules live in
`studio.streams.targets`; keys go in, never out (only their last characters).
"""

from __future__ import annotations

from flask import current_app, url_for

from studio import secretbox
from studio.api import openapi
from studio.api.schemas import StreamPath
from studio.api.target_schemas import TargetCreate, TargetList, TargetOut, TargetPath, TargetUpdate
from studio.api.views import NOT_FOUND, bp, caller, reply
from studio.extensions import db
from studio.models import Target
from studio.streams import service, targets

TARGET_NOT_FOUND = openapi.error_response(
    "No such stream among yours, or no such target of it (404 for another creator's too)."
)
INVALID_TARGET = openapi.error_response(
    "Invalid input: a URL that is not rtmp:// or rtmps:// with a host, a name or key that is "
    "empty, too long or holds spaces or control characters, or the stream already has "
    "STUDIO_MAX_TARGETS targets. `fields` names each bad field. Nothing was changed."
)


def target_out(target: Target) -> TargetOut:
    return TargetOut(
        id=target.id,
        name=target.name,
        url=target.url,
        key_hint=target.key_hint,
        enabled=target.enabled,
        state=target.state,
        last_error=target.last_error,
        state_changed_at=target.state_changed_at,
        created_at=target.created_at,
    )


def _box() -> secretbox.SecretBox:
    return secretbox.from_config(current_app.config)


@bp.get(
    "/streams/<stream_id>/targets",
    responses={200: TargetList, 404: NOT_FOUND},
    description=(
        "Each target's relay state: `connecting`, `live`, `retrying` (with `last_error`), "
        "`stopped`. Keys are never returned, only their last characters."
    ),
)
def list_targets(path: StreamPath):
    """List a stream's multistream targets."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    rows = targets.list_targets(db.session, stream)
    return reply(TargetList(targets=[target_out(target) for target in rows]))


@bp.post(
    "/streams/<stream_id>/targets",
    responses={201: TargetOut, 400: INVALID_TARGET, 404: NOT_FOUND},
    description=(
        "While the stream is live, an enabled target is relayed within a second or two. "
        "`Location` is the target's URL."
    ),
)
def create_target(path: StreamPath, body: TargetCreate):
    """Add a multistream target (RTMP or RTMPS server + stream key)."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    target = targets.add_target(
        db.session,
        stream,
        _box(),
        name=body.name,
        url=body.url,
        key=body.key,
        enabled=body.enabled,
        limit=int(current_app.config.get("MAX_TARGETS", 5)),
        allow_private=bool(current_app.config.get("TARGET_ALLOW_PRIVATE")),
    )
    db.session.commit()
    location = url_for(".update_target", stream_id=stream.public_id, target_id=target.id)
    return reply(target_out(target), 201, {"Location": location})


@bp.patch(
    "/streams/<stream_id>/targets/<target_id>",
    responses={200: TargetOut, 400: INVALID_TARGET, 404: TARGET_NOT_FOUND},
    description=(
        "Enabling while live starts the relay, disabling stops it; a new URL or key restarts it."
    ),
)
def update_target(path: TargetPath, body: TargetUpdate):
    """Change a target's name, URL, key or enabled flag."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    target = targets.get_target(db.session, stream, path.target_id)
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    allow_private = bool(current_app.config.get("TARGET_ALLOW_PRIVATE"))
    targets.update_target(db.session, target, _box(), changes, allow_private=allow_private)
    db.session.commit()
    return reply(target_out(target))


@bp.delete(
    "/streams/<stream_id>/targets/<target_id>",
    responses={204: None, 404: TARGET_NOT_FOUND},
)
def delete_target(path: TargetPath):
    """Remove a target; its relay stops."""
    stream = service.get_owned_stream(db.session, caller(), path.stream_id)
    targets.delete_target(db.session, targets.get_target(db.session, stream, path.target_id))
    db.session.commit()
    return reply(None)
