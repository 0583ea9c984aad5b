"""The reconnect window: a publisher that drops and comes back in time
continues the same broadcast.

A live stream whose publisher leaves (an unpublish) becomes `reconnecting`
with a deadline `reconnect_window` seconds away, and its broadcast stays
open: the live playlist keeps its segments and gets no ENDLIST, viewers keep
their player. A publisher of the same stream, proving itself with the
current key (or a publish ticket), within the deadline continues that
broadcast; one after it (or a key rotation, disabling, a duration limit)
ends it as any broadcast ends: replay, webhooks, metrics.

Who ends a broadcast whose deadline passed without a publisher: the
reconciler's loop (`workers/reconcile.py`, every RECONCILE_INTERVAL, also
while the engine is unreachable) through `expire_reconnects`; and a publish
arriving after the deadline ends it before opening the new one, so the
deadline is exact for publishers even between two passes.

Like `service`, these functions take a session and plain values, raise
domain events and never commit. A stream or broadcast they are given may be
an entity or a plain row with its columns (the publish path reads them
without the ORM): they write by primary key (`writes.RowKey`, recorded on
the session's objects) and build their events from the values written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from studio.core import events, writes
from studio.errors import ValidationError
from studio.models import Broadcast, Stream, utcnow

# A stream or a broadcast: its entity, or a plain row with its columns (and,
# for a stream, `owner_webhooks`: see `service._LOCK`).
StreamRow = Stream | Row
BroadcastRow = Broadcast | Row

RECONNECT_WINDOW_DEFAULT = 60  # seconds
RECONNECT_WINDOW_MAX = 1800
# Why a broadcast ended when nobody came back within the window.
TIMED_OUT = "reconnect_timeout"
# Why a broadcast ended when its media node stopped answering for longer
# than the grace period (workers/reconcile.py).
NODE_DOWN = "node_down"
# The unpublish reasons a publisher may come back from (the engine saw it go,
# or the node holding it died: the encoder reconnects through the pool's
# address to another node); the reconciler's and the cost guard's ends are final.
RECONNECTABLE = frozenset({"unpublish", NODE_DOWN})
# What a stream's row holds once its broadcast ended.
_ENDED = {"status": "ended", "reconnect_deadline": None, "node_id": None}


def clean_reconnect_window(value: object) -> int:
    """A reconnect window in whole seconds, 0..RECONNECT_WINDOW_MAX (0 turns
    it off); raises ValidationError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            "Invalid stream.", {"reconnect_window": "A whole number of seconds is required."}
        )
    if not 0 <= value <= RECONNECT_WINDOW_MAX:
        raise ValidationError(
            "Invalid stream.",
            {"reconnect_window": f"Between 0 and {RECONNECT_WINDOW_MAX} seconds."},
        )
    return value


def set_reconnect_window(session: Session, stream: Stream, value: object) -> Stream:
    """Change the stream's window (from the next unpublish on; a deadline
    already set stays); raises ValidationError."""
    stream.reconnect_window = clean_reconnect_window(value)
    return stream


def begin_reconnect(session: Session, stream: StreamRow, broadcast: BroadcastRow) -> datetime:
    """The publisher of the open `broadcast` left: the stream waits for it
    until the deadline it returns (status `reconnecting`; the broadcast stays
    open). Raises StreamChanged and StreamReconnecting."""
    deadline = utcnow() + timedelta(seconds=stream.reconnect_window)
    webhooks = stream.owner_webhooks is not False
    writes.update_rows(
        session,
        (
            writes.RowKey(Stream, stream.id),
            {"status": "reconnecting", "reconnect_deadline": deadline},
        ),
    )
    view = events.broadcast_view(broadcast)
    changed = events.StreamChanged(
        stream.public_id, "reconnecting", stream.disabled, view, deadline
    )
    events.raise_event(session, changed)
    events.raise_event(
        session,
        events.StreamReconnecting(
            stream.public_id,
            broadcast.id,
            deadline,
            stream.reconnect_window,
            webhooks=webhooks,
        ),
    )
    return deadline


def resume(
    session: Session,
    stream: StreamRow,
    broadcast: Broadcast,
    *,
    client_id: str,
    server_id: str,
    service_id: str,
    protocol: str,
    ip: str,
    node_id: str | None = None,
) -> Broadcast:
    """A publisher (already checked by the caller) continues the stream's
    reconnecting `broadcast`: it becomes the broadcast's publisher (its
    unpublish, drop and the reconciler address it from now on), the stream is
    `live` again. Raises StreamChanged and BroadcastResumed."""
    publisher = {
        "client_id": client_id,
        "server_id": server_id,
        "service_id": service_id,
        "protocol": protocol,
        "ip": ip[:64],
    }
    # It may come back through another media node.
    live = {"status": "live", "reconnect_deadline": None, "node_id": node_id}
    writes.update_rows(session, (writes.RowKey(Stream, stream.id), live), (broadcast, publisher))
    view = events.BroadcastView(broadcast.id, broadcast.started_at, None, protocol)
    events.raise_event(
        session, events.StreamChanged(stream.public_id, "live", stream.disabled, view)
    )
    events.raise_event(session, events.BroadcastResumed(stream.public_id, broadcast.id, protocol))
    return broadcast


def deadline_passed(stream: StreamRow, now: datetime | None = None) -> bool:
    """True when a reconnecting stream's deadline is over."""
    deadline = stream.reconnect_deadline
    return deadline is not None and deadline <= (now or utcnow())


def close_broadcast(
    session: Session, stream: StreamRow, broadcast: BroadcastRow, reason: str
) -> None:
    """End `broadcast` of `stream` for `reason`: status `ended`, no deadline.
    Raises StreamChanged and BroadcastEnded (its replay is written once
    committed)."""
    webhooks = stream.owner_webhooks is not False
    ended_at = utcnow()
    writes.update_rows(
        session,
        (writes.RowKey(Stream, stream.id), _ENDED),
        (writes.RowKey(Broadcast, broadcast.id), {"ended_at": ended_at, "end_reason": reason}),
    )
    view = events.BroadcastView(broadcast.id, broadcast.started_at, ended_at, broadcast.protocol)
    events.raise_event(
        session, events.StreamChanged(stream.public_id, "ended", stream.disabled, view)
    )
    events.raise_event(
        session,
        events.BroadcastEnded(stream.public_id, broadcast.id, reason, webhooks=webhooks),
    )


def end_waiting(session: Session, stream: StreamRow, reason: str) -> Broadcast | None:
    """End the broadcast a reconnecting `stream` waits to continue (nothing
    for a stream in any other status). Returns it, or None."""
    if stream.status != "reconnecting":
        return None
    broadcast = _open_broadcast(session, stream)
    if broadcast is None:  # not expected; the status alone is repaired
        writes.update_rows(session, (writes.RowKey(Stream, stream.id), _ENDED))
        events.raise_event(
            session, events.StreamChanged(stream.public_id, "ended", stream.disabled)
        )
        return None
    close_broadcast(session, stream, broadcast, reason)
    return broadcast


def expire_reconnects(session: Session, now: datetime | None = None) -> list[str]:
    """End the broadcasts whose reconnect deadline passed without a publisher
    (reason `reconnect_timeout`); the public ids of their streams. Rows
    another transaction holds (a publish deciding right now) are left to the
    next pass. The caller commits."""
    now = now or utcnow()
    due = session.scalars(
        select(Stream)
        .where(Stream.status == "reconnecting", Stream.reconnect_deadline <= now)
        .order_by(Stream.reconnect_deadline)
        .with_for_update(skip_locked=True)
    ).all()
    for stream in due:
        end_waiting(session, stream, TIMED_OUT)
    return [stream.public_id for stream in due]


def _open_broadcast(session: Session, stream: StreamRow) -> Broadcast | None:
    return session.scalar(
        select(Broadcast).where(Broadcast.stream_id == stream.id, Broadcast.ended_at.is_(None))
    )
