"""Domain events: what changed, announced only once it is committed.

A service raises an event on the session (`raise_event`); the events of a
unit of work are collected on it and handed to every subscriber of their
type after the commit (nothing is announced when it rolls back). Subscribers
(the Redis fan-out, the upload pipeline, the media engine) register once at
start-up with `subscribe`; the domain does not know who listens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from studio.transactions import after_commit

if TYPE_CHECKING:
    from studio.models import Broadcast, Stream

log = logging.getLogger(__name__)
_KEY = "studio_events"


@dataclass(frozen=True)
class BroadcastView:
    """The public facts of a broadcast carried by a status event (no secrets)."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    protocol: str


@dataclass(frozen=True)
class StreamChanged:
    """A stream's status, disabled flag or current broadcast changed."""

    stream: str
    status: str
    disabled: bool
    broadcast: BroadcastView | None = None
    # While `reconnecting`: when the broadcast ends unless its publisher returns.
    reconnect_deadline: datetime | None = None


def webhooks_hint() -> bool:
    """The `webhooks` field of the events a creator's webhooks may hear:
    False when the raiser knew that the stream's owner had no enabled
    webhook endpoint (read in the same statement that locked the stream), so
    no webhook job is queued for nobody; True (the default) when it did not
    ask. A hint to listeners, not part of what happened: events compare
    equal without it."""
    return field(default=True, compare=False)


@dataclass(frozen=True)
class BroadcastStarted:
    """A publisher was accepted and a broadcast opened."""

    stream: str
    broadcast_id: int
    protocol: str
    webhooks: bool = webhooks_hint()


@dataclass(frozen=True)
class StreamReconnecting:
    """The publisher of a live broadcast left; the broadcast stays open until
    `deadline` for a publisher of the same stream (and key) to continue it."""

    stream: str
    broadcast_id: int
    deadline: datetime
    window: int
    webhooks: bool = webhooks_hint()


@dataclass(frozen=True)
class BroadcastResumed:
    """A publisher came back within the reconnect window: the same broadcast
    goes on (no new BroadcastStarted)."""

    stream: str
    broadcast_id: int
    protocol: str


@dataclass(frozen=True)
class BroadcastEnded:
    """A broadcast ended; its replay is due."""

    stream: str
    broadcast_id: int
    reason: str
    webhooks: bool = webhooks_hint()


@dataclass(frozen=True)
class ReplayReady:
    """A broadcast's replay playlist is in the bucket."""

    stream: str
    broadcast_id: int


@dataclass(frozen=True)
class StreamDeleted:
    """A stream and its broadcasts are gone; its media is to be purged."""

    stream: str


@dataclass(frozen=True)
class VisibilityChanged:
    """A stream became private, or stopped being private: its objects are
    to move to the other prefix of the bucket."""

    stream: str
    private: bool


@dataclass(frozen=True)
class PublisherRevoked:
    """A live publisher lost its right to publish (key rotated, stream
    disabled or deleted) and is to be disconnected."""

    stream: str
    client_id: str
    server_id: str = ""
    # The media node holding it (None: the single node `default`).
    node_id: str | None = None


@dataclass(frozen=True)
class ChatMessagePosted:
    """A chat message was stored; `message` is its public view (studio.chat)."""

    stream: str
    message: dict


@dataclass(frozen=True)
class ChatMessageDeleted:
    """A moderator deleted a chat message: it disappears for everyone."""

    stream: str
    message_id: int


@dataclass(frozen=True)
class ChatSettingsChanged:
    """A stream's chat mode, slow mode or blocklist changed."""

    stream: str
    mode: str
    slow_mode: int
    blocklist: tuple[str, ...]


@dataclass(frozen=True)
class ChatModerated:
    """A participant was timed out, banned or let back in (for moderators' pages)."""

    stream: str
    action: str
    participant: str
    until: datetime | None = None


@dataclass(frozen=True)
class TargetsChanged:
    """A stream's multistream targets were added, changed or removed (the
    relays start, restart or stop accordingly)."""

    stream: str


@dataclass(frozen=True)
class TargetStateChanged:
    """A target's relay changed state: connecting, live, retrying, stopped."""

    stream: str
    target_id: int
    state: str
    last_error: str | None = None


@dataclass(frozen=True)
class TargetFailed:
    """A target's relay failed (it retries with backoff); the broadcast and
    the other targets go on. Raised once per run of failures, not per retry."""

    stream: str
    target_id: int
    name: str
    error: str


@dataclass(frozen=True)
class PublishRefusedRecorded:
    """A refused publish was recorded for the stream (at a bounded rate:
    `studio.core.refusals`); `reason` is in words ("old key", ...)."""

    stream: str
    reason: str
    ip: str
    refused_at: datetime


Event = (
    StreamChanged
    | BroadcastStarted
    | StreamReconnecting
    | BroadcastResumed
    | BroadcastEnded
    | ReplayReady
    | StreamDeleted
    | VisibilityChanged
    | PublisherRevoked
    | ChatMessagePosted
    | ChatMessageDeleted
    | ChatSettingsChanged
    | ChatModerated
    | TargetsChanged
    | TargetStateChanged
    | TargetFailed
    | PublishRefusedRecorded
)
Handler = Callable[[Event], None]
_subscribers: dict[type, list[Handler]] = {}


def subscribe(event_type: type, handler: Handler) -> None:
    """Call `handler(event)` after each commit that raised an `event_type`.
    Subscribing the same handler again changes nothing (apps are created
    more than once per process: tests, workers)."""
    handlers = _subscribers.setdefault(event_type, [])
    if handler not in handlers:
        handlers.append(handler)


def unsubscribe(event_type: type, handler: Handler) -> None:
    """Stop calling `handler` for `event_type` (no error if it was not subscribed)."""
    handlers = _subscribers.get(event_type, [])
    if handler in handlers:
        handlers.remove(handler)


def raise_event(session: Session, event: Event) -> None:
    """Collect `event` in the session's unit of work; it is published once
    the session commits and dropped if it rolls back."""
    pending = session.info.setdefault(_KEY, [])
    if not pending:
        after_commit(session, lambda: _publish(session.info.pop(_KEY, [])))
    pending.append(event)


def pending_events(session: Session) -> list[Event]:
    """Events raised in the current unit of work, not yet committed."""
    return list(session.info.get(_KEY, []))


def stream_changed(stream: Stream, broadcast: Broadcast | None = None) -> StreamChanged:
    """The StreamChanged event of a stream row and its current broadcast row."""
    view = None if broadcast is None else broadcast_view(broadcast)
    deadline = stream.reconnect_deadline if stream.status == "reconnecting" else None
    return StreamChanged(stream.public_id, stream.status, stream.disabled, view, deadline)


def broadcast_view(broadcast: Broadcast) -> BroadcastView:
    """The public facts of `broadcast` (a Broadcast, or a plain row with its columns)."""
    return BroadcastView(broadcast.id, broadcast.started_at, broadcast.ended_at, broadcast.protocol)


@orm_event.listens_for(Session, "after_rollback")
def _drop_events(session: Session) -> None:
    session.info.pop(_KEY, None)


def _publish(events: list[Event]) -> None:
    for event in events:
        for handler in _subscribers.get(type(event), ()):
            try:
                handler(event)
            except Exception:  # one listener failing must not silence the others
                log.exception("%s handler %s failed", type(event).__name__, handler.__name__)
