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
from studio.redis_client import batch, get_redis

log = logging.getLogger(__name__)

# Server-side only (never forwarded to a page): the stream was deleted, so its
# sockets close; it became private, so each viewer's socket checks again
# whether its viewer may still watch it (`studio.live.views`).
GONE = "gone"
ACCESS = "access"


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


def chat_message(event: events.ChatMessagePosted) -> dict:
    return {"type": "chat.message", "message": event.message}


def chat_deleted(event: events.ChatMessageDeleted) -> dict:
    return {"type": "chat.deleted", "id": event.message_id}


def chat_settings(event: events.ChatSettingsChanged) -> dict:
    """The settings as everyone gets them; `blocklist` is for moderators'
    sockets only (the socket moves it into `settings` or drops it)."""
    return {
        "type": "chat.settings",
        "settings": {"mode": event.mode, "slow_mode": event.slow_mode},
        "blocklist": list(event.blocklist),
    }


def chat_moderation(event: events.ChatModerated) -> dict:
    """For moderators' sockets only."""
    return {
        "type": "chat.moderation",
        "action": event.action,
        "participant": event.participant,
        "until": event.until.isoformat() if event.until else None,
    }


_CHAT = {
    events.ChatMessagePosted: chat_message,
    events.ChatMessageDeleted: chat_deleted,
    events.ChatSettingsChanged: chat_settings,
    events.ChatModerated: chat_moderation,
}


def targets_message(event: events.TargetsChanged | events.TargetStateChanged) -> dict:
    """The stream's targets changed (owner's pages refresh them; the relay
    process re-reads them). Never sent to viewers: `live.views` keeps it
    for the owner."""
    message: dict = {"type": "targets", "stream": event.stream}
    if isinstance(event, events.TargetStateChanged):
        message["target"] = {"id": event.target_id, "state": event.state}
    return message


def publish(app: Flask | None, public_id: str, message: dict) -> None:
    """Publish a message on the stream's channel (the current app's Redis
    when `app` is None, in the enclosing batch of writes if there is one);
    Redis being down is logged, not raised."""
    target = batch() if app is None else None
    try:
        (target or get_redis(app)).publish(channel(public_id), json.dumps(message))
    except Exception:
        log.warning("could not publish %s event for stream %s", message.get("type"), public_id)


def _stream_changed(event: events.StreamChanged) -> None:
    publish(None, event.stream, status_message(event))


def _replay_ready(event: events.ReplayReady) -> None:
    publish(None, event.stream, replay_message(event))


def _chat_event(event) -> None:
    publish(None, event.stream, _CHAT[type(event)](event))


def _targets_changed(event: events.TargetsChanged | events.TargetStateChanged) -> None:
    publish(None, event.stream, targets_message(event))


def _stream_deleted(event: events.StreamDeleted) -> None:
    publish(None, event.stream, {"type": GONE})


def _visibility_changed(event: events.VisibilityChanged) -> None:
    if event.private:  # who could watch a public stream still can
        publish(None, event.stream, {"type": ACCESS})


def init_app(app: Flask) -> None:
    """Publish the domain's stream events on Redis after each commit. No I/O."""
    events.subscribe(events.StreamChanged, _stream_changed)
    events.subscribe(events.TargetsChanged, _targets_changed)
    events.subscribe(events.TargetStateChanged, _targets_changed)
    events.subscribe(events.ReplayReady, _replay_ready)
    events.subscribe(events.StreamDeleted, _stream_deleted)
    events.subscribe(events.VisibilityChanged, _visibility_changed)
    for event_type in _CHAT:
        events.subscribe(event_type, _chat_event)
