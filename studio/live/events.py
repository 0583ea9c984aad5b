"""Stream status changes, fanned out over Redis pub/sub (one channel per stream)
so every web worker can push them to its websockets."""

from __future__ import annotations

import json
import logging

from flask import current_app
from sqlalchemy.orm import Session

from studio.models import Broadcast, Stream
from studio.redis_client import get_redis
from studio.transactions import after_commit

log = logging.getLogger(__name__)


def channel(public_id: str) -> str:
    """Redis pub/sub channel carrying one stream's events."""
    return f"studio:stream:{public_id}"


def status_event(stream: Stream, broadcast: Broadcast | None = None) -> dict:
    """The public view of a stream's state, as pushed to pages (no secrets)."""
    event = {
        "type": "status",
        "stream": stream.public_id,
        "status": stream.status,
        "disabled": stream.disabled,
    }
    if broadcast is not None:
        event["broadcast"] = {
            "id": broadcast.id,
            "started_at": broadcast.started_at.isoformat(),
            "ended_at": broadcast.ended_at.isoformat() if broadcast.ended_at else None,
            "protocol": broadcast.protocol,
        }
    return event


def stream_changed(session: Session, stream: Stream, broadcast: Broadcast | None = None) -> None:
    """Publish the stream's new state once the current transaction commits."""
    event = status_event(stream, broadcast)
    app = current_app._get_current_object()
    after_commit(session, lambda: publish(app, stream.public_id, event))


def publish(app, public_id: str, event: dict) -> None:
    """Publish an event on the stream's channel; Redis being down is logged, not raised."""
    try:
        get_redis(app).publish(channel(public_id), json.dumps(event))
    except Exception:
        log.warning("could not publish %s event for stream %s", event.get("type"), public_id)


def replay_event(stream_public_id: str, broadcast: Broadcast) -> dict:
    """Pages refresh their list of past broadcasts on this (no secrets)."""
    return {"type": "replay", "stream": stream_public_id, "broadcast": {"id": broadcast.id}}


def replay_ready(session: Session, stream_public_id: str, broadcast: Broadcast) -> None:
    """Announce a broadcast's replay once the current transaction commits."""
    event = replay_event(stream_public_id, broadcast)
    app = current_app._get_current_object()
    after_commit(session, lambda: publish(app, stream_public_id, event))
