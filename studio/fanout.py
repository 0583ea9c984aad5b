"""Stream events fanned out over Redis pub/sub (one channel per stream), so
every web worker can push them to its websockets, whichever process (web,
RQ worker, reconciler) committed the change.

`init_app` subscribes the publisher to the domain's events once at start-up;
the domain itself never imports this module.
"""

from __future__ import annotations

import json
import logging

from flask import Flask

from studio.core import events
from studio.redis_client import get_redis

log = logging.getLogger(__name__)


def channel(public_id: str) -> str:
    """Redis pub/sub channel carrying one stream's events."""
    return f"studio:stream:{public_id}"


def status_message(event: events.StreamChanged) -> dict:
    """The public view of a stream's state, as pushed to pages (no secrets)."""
    message = {
        "type": "status",
        "stream": event.stream,
        "status": event.status,
        "disabled": event.disabled,
    }
    if event.reconnect_deadline is not None:
        message["reconnect_deadline"] = event.reconnect_deadline.isoformat()
    broadcast = event.broadcast
    if broadcast is not None:
        message["broadcast"] = {
            "id": broadcast.id,
            "started_at": broadcast.started_at.isoformat(),
            "ended_at": broadcast.ended_at.isoformat() if broadcast.ended_at else None,
            "protocol": broadcast.protocol,
        }
    return message


def replay_message(event: events.ReplayReady) -> dict:
    """Pages refresh their list of past broadcasts on this (no secrets)."""
    return {"type": "replay", "stream": event.stream, "broadcast": {"id": event.broadcast_id}}


def publish(app: Flask | None, public_id: str, message: dict) -> None:
    """Publish a message on the stream's channel (the current app's Redis
    when `app` is None); Redis being down is logged, not raised."""
    try:
        get_redis(app).publish(channel(public_id), json.dumps(message))
    except Exception:
        log.warning("could not publish %s event for stream %s", message.get("type"), public_id)


def _stream_changed(event: events.StreamChanged) -> None:
    publish(None, event.stream, status_message(event))


def _replay_ready(event: events.ReplayReady) -> None:
    publish(None, event.stream, replay_message(event))


def init_app(app: Flask) -> None:
    """Publish the domain's stream events on Redis after each commit. No I/O."""
    events.subscribe(events.StreamChanged, _stream_changed)
    events.subscribe(events.ReplayReady, _replay_ready)
