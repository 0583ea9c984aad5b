"""Domain events → webhook events, queued after the commit.

A subscriber of the domain events (`studio.core.events`) turns each one in
WEBHOOK_EVENTS into the webhook envelope and queues one
`DISPATCH_WEBHOOK_EVENT` job (a Redis write): the worker finds the
endpoints and delivers. Nothing here waits on a database or a receiver, so
a media-server callback is never slowed by a webhook.

A new domain event becomes a webhook with one line in WEBHOOK_EVENTS: its
class, the webhook event name and `facts` (its fields as JSON, with
`stream` as `{"id": ...}`) or a function of its own.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
from flask import Flask

from studio.core import events
from studio.media import jobs
from studio.webhooks import service

log = logging.getLogger(__name__)


def facts(event: Any) -> dict:
    """A domain event's fields as webhook data (its `stream` as `{"id"}`)."""
    data: dict[str, Any] = {}
    for field in dataclasses.fields(event):
        if field.name == "webhooks":
            continue  # a hint to listeners (`events.webhooks_hint`), not a fact
        value = getattr(event, field.name)
        if field.name == "stream":
            value = {"id": value}
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)  # type: ignore[arg-type]
        data[field.name] = value
    return data


def _live(event: events.BroadcastStarted) -> dict:
    return {
        "stream": {"id": event.stream},
        "broadcast": {"id": event.broadcast_id, "protocol": event.protocol},
    }


def _ended(event: events.BroadcastEnded) -> dict:
    return {
        "stream": {"id": event.stream},
        "broadcast": {"id": event.broadcast_id, "end_reason": event.reason},
    }


def _replay(event: events.ReplayReady) -> dict:
    # The worker adds `replay_url` when it dispatches.
    return {"stream": {"id": event.stream}, "broadcast": {"id": event.broadcast_id}}


def _refused(event: events.PublishRefusedRecorded) -> dict:
    return {
        "stream": {"id": event.stream},
        "reason": event.reason,
        "address": event.ip or None,
        "refused_at": event.refused_at.isoformat(),
    }


# Domain event class -> (webhook event, its data). `stream.reconnecting` and
# `target.failed` hook in here with one line each once their domain events
# exist, e.g. `events.StreamReconnecting: ("stream.reconnecting", facts),`.
WEBHOOK_EVENTS: dict[type, tuple[str, Callable[[Any], dict]]] = {
    events.BroadcastStarted: ("stream.live", _live),
    events.BroadcastEnded: ("stream.ended", _ended),
    events.ReplayReady: ("replay.ready", _replay),
    events.PublishRefusedRecorded: ("publish.refused", _refused),
    events.StreamReconnecting: ("stream.reconnecting", facts),
    events.TargetFailed: ("target.failed", facts),
}


def announce(event: Any) -> None:
    """Queue the webhook event of a committed domain event. Redis being down
    is logged: the webhook is lost, the domain change is not. An event whose
    raiser knew the owner had no enabled endpoint (`webhooks` False) queues
    nothing: the job would find nobody to deliver to."""
    if not getattr(event, "webhooks", True):
        return
    event_type, data = WEBHOOK_EVENTS[type(event)]
    envelope = service.new_event(event_type, data(event))
    try:
        jobs.DISPATCH_WEBHOOK_EVENT.delay(event.stream, envelope)
    except redis.RedisError:
        log.warning("webhook %s of stream %s not queued (Redis down)", event_type, event.stream)


# "Send test event" is allowed once per endpoint in this many seconds: the
# button must not turn the workers into a request cannon aimed at any URL.
TEST_INTERVAL = 5
_TEST_GATE = "studio:webhook-test:{}"


def send_test(connection: redis.Redis, endpoint_id: int) -> str | None:
    """Queue one test delivery to the endpoint; its event id, or None if one
    was queued in the last TEST_INTERVAL seconds. Raises redis errors."""
    if not connection.set(_TEST_GATE.format(endpoint_id), 1, nx=True, ex=TEST_INTERVAL):
        return None
    event = service.make_test_event()
    jobs.DELIVER_TEST_WEBHOOK.enqueue(connection, endpoint_id, event)
    return event["id"]


def init_app(app: Flask) -> None:
    """Subscribe to every mapped domain event. No I/O."""
    for event_class in WEBHOOK_EVENTS:
        events.subscribe(event_class, announce)
