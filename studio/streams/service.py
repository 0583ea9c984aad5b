"""The stream domain: creating streams, keys, and the publish status machine.

Every surface (pages, API, media-server callbacks, websocket ingest) calls
these functions; none of them commits — the caller does. They take a session
and plain values, raise domain errors, and announce what changed as domain
events (`studio.core.events`), published after the commit by whoever
subscribed at start-up (websocket fan-out, upload pipeline, media engine).

Status machine: `created` --publish--> `live` --unpublish--> `ended`
--publish--> `live` ... ; with a reconnect window (`reconnect.py`):
`live` --unpublish--> `reconnecting` --publish in time--> `live` (the same
broadcast), or --deadline, key rotated, disabled--> `ended`. `disabled` is a
flag that refuses publish.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import CursorResult, Executable, Row, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session

from studio.core import events, text, writes
from studio.errors import NotFound, ValidationError
from studio.media import nodes
from studio.models import (
    INGEST_PROTOCOLS,
    Broadcast,
    MediaNode,
    Stream,
    User,
    WebhookEndpoint,
    utcnow,
)
from studio.streams import reconnect
from studio.streams.tickets import (  # noqa: F401 (the publish control's API)
    PUBLISH_TICKET_TTL,
    mint_publish_ticket,
    redeem_publish_ticket,
)

log = logging.getLogger(__name__)

TITLE_MAX = 120
PUBLIC_ID_ALPHABET = string.ascii_lowercase + string.digits
PUBLIC_ID_LENGTH = 16  # ~82 bits: unguessable, yet safe as a file and stream name


def new_public_id() -> str:
    """A random, unguessable stream id (not a secret: it is in every public URL)."""
    return "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))


def new_stream_key() -> str:
    """A fresh publish secret (URL-safe)."""
    return secrets.token_urlsafe(24)


def clean_title(title: object) -> str:
    """Validate a stream title; raises ValidationError."""
    if not isinstance(title, str) or not title.strip():
        raise ValidationError("Invalid stream.", {"title": "A title is required."})
    title = title.strip()
    if len(title) > TITLE_MAX:
        raise ValidationError("Invalid stream.", {"title": f"At most {TITLE_MAX} characters."})
    if (reason := text.unprintable(title, lines=False)) is not None:
        raise ValidationError("Invalid stream.", {"title": f"A title cannot contain {reason}."})
    return title


def create_stream(
    session: Session,
    owner: User,
    title: object,
    reconnect_window: object = reconnect.RECONNECT_WINDOW_DEFAULT,
) -> Stream:
    """Create a stream for `owner`; raises ValidationError on a bad title or
    reconnect window."""
    stream = Stream(
        owner=owner,
        title=clean_title(title),
        reconnect_window=reconnect.clean_reconnect_window(reconnect_window),
        public_id=new_public_id(),
        stream_key=new_stream_key(),
        status="created",
        disabled=False,
    )
    session.add(stream)
    session.flush()
    return stream


def list_streams(session: Session, owner: User) -> list[Stream]:
    """The owner's streams, newest first."""
    query = select(Stream).where(Stream.owner_id == owner.id).order_by(Stream.id.desc())
    return list(session.scalars(query))


def get_owned_stream(session: Session, owner: User, public_id: str) -> Stream:
    """The owner's stream; raises NotFound for anyone else's (no existence leak)."""
    stream = session.scalar(
        select(Stream).where(Stream.public_id == public_id, Stream.owner_id == owner.id)
    )
    if stream is None:
        raise NotFound("Stream not found.")
    return stream


def get_public_stream(session: Session, public_id: str) -> Stream:
    """A stream by public id, for viewer pages; raises NotFound."""
    stream = session.scalar(select(Stream).where(Stream.public_id == public_id))
    if stream is None:
        raise NotFound("Stream not found.")
    return stream


def rename_stream(session: Session, stream: Stream, title: object) -> Stream:
    """Change the title; raises ValidationError."""
    stream.title = clean_title(title)
    return stream


def rotate_key(session: Session, stream: Stream) -> Stream:
    """Issue a new key; the old one is refused from now on. The broadcast
    under way (live, or waiting for its publisher to reconnect) ends now and
    a live publisher using the old key is dropped: a publisher with the new
    key starts a new broadcast."""
    stream.stream_key = new_stream_key()
    end_current_broadcast(session, stream, "key_rotated")
    return stream


def set_disabled(session: Session, stream: Stream, disabled: bool) -> Stream:
    """Disable (refuse publish, drop a live publisher) or enable a stream."""
    if stream.disabled == disabled:
        return stream
    stream.disabled = disabled
    if disabled and end_current_broadcast(session, stream, "disabled"):
        return stream  # its StreamChanged carries the flag already
    events.raise_event(session, events.stream_changed(stream, open_broadcast(session, stream)))
    return stream


def delete_stream(session: Session, stream: Stream) -> None:
    """Delete a stream with its broadcasts; a live publisher is dropped and,
    once committed, a job removes its objects from the bucket and its local
    HLS files."""
    _drop_live_publisher(session, stream)
    events.raise_event(session, events.StreamDeleted(stream.public_id))
    session.delete(stream)


def open_broadcast(session: Session, stream: Stream | Row) -> Broadcast | None:
    """The broadcast of `stream` (an entity, or a plain row) that has not ended, if any."""
    return session.scalar(
        select(Broadcast).where(Broadcast.stream_id == stream.id, Broadcast.ended_at.is_(None))
    )


def list_broadcasts(session: Session, stream: Stream, limit: int = 50) -> list[Broadcast]:
    """The stream's broadcasts, newest first."""
    query = (
        select(Broadcast)
        .where(Broadcast.stream_id == stream.id)
        .order_by(Broadcast.started_at.desc(), Broadcast.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def end_current_broadcast(session: Session, stream: Stream, reason: str) -> bool:
    """End the open broadcast now (live or reconnecting), dropping its
    publisher if one is connected (its unpublish, arriving later, then
    changes nothing). True if a broadcast ended."""
    broadcast = open_broadcast(session, stream)
    if broadcast is None:
        return False
    _drop_live_publisher(session, stream)
    reconnect.close_broadcast(session, stream, broadcast, reason)
    return True


def _drop_live_publisher(session: Session, stream: Stream) -> None:
    broadcast = open_broadcast(session, stream)
    if broadcast is None or stream.status == "reconnecting":
        return  # a reconnecting broadcast has nobody to drop
    events.raise_event(
        session,
        events.PublisherRevoked(
            stream.public_id, broadcast.client_id, broadcast.server_id, stream.node_id
        ),
    )


# --- publish control -------------------------------------------------------


@dataclass(frozen=True)
class PublishAttempt:
    """A media server asking whether a publisher may go live.

    The publisher proves itself with the stream's secret, or (the studio's
    own browser-ingest relay) with a publish ticket already redeemed for this
    stream and client by `redeem_publish_ticket`.
    """

    stream_name: str
    secret: str
    client_id: str
    protocol: str
    server_id: str = ""
    service_id: str = ""
    ip: str = ""
    ticket_redeemed: bool = False
    # The media node whose engine asks, its id cleaned (None: a caller that
    # knows no node); a draining node refuses.
    node_id: str | None = None


class PublishRefused(Exception):
    """The publish was refused; `reason` is safe to log (never the key).
    `kind` is what the creator is told ("old key", "stream disabled",
    "already live", "live limit": see `studio.core.refusals`), or "" for a
    refusal that is no news to them (unknown stream or app, a stale callback)."""

    def __init__(self, reason: str, kind: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class PublishLimits:
    """The cost guards the status machine enforces (0 = no limit)."""

    max_live_per_user: int = 0


def start_broadcast(
    session: Session,
    attempt: PublishAttempt,
    limits: PublishLimits = PublishLimits(),
    configured_nodes: Iterable[Mapping] = (),
) -> Broadcast:
    """Accept a publisher: status `live` and a new broadcast, or the
    broadcast a reconnecting stream waits for when it comes within the
    deadline (after it, that broadcast ends first).

    Idempotent for a repeated callback of the same publisher. Raises
    PublishRefused for an unknown stream, a draining media node, a wrong
    key, a disabled stream, a second publisher while live, or a publisher
    that has already left. A node of `configured_nodes` (the settings')
    publishing for the first time gets its row (`nodes.check_accepts_publish`).
    """
    if attempt.protocol not in INGEST_PROTOCOLS:
        raise PublishRefused("unknown ingest protocol")
    # With a live limit, the owner's row is locked with the stream's, in one
    # statement: the limit (`_broadcasts_and_live_count`) counts under that lock.
    query = _LOCK_WITH_OWNER if limits.max_live_per_user > 0 else _LOCK
    parameters = {"stream_name": attempt.stream_name, "node_id": attempt.node_id}
    stream = _rows(session, query, parameters).first()
    if stream is None:
        raise PublishRefused("unknown stream")
    if attempt.node_id is not None:
        try:
            nodes.check_accepts_publish(
                session, attempt.node_id, configured_nodes, stream.node_draining
            )
        except nodes.NodeDraining as exc:
            raise PublishRefused(exc.message) from None
    if not attempt.ticket_redeemed and not hmac.compare_digest(
        attempt.secret.encode(), stream.stream_key.encode()
    ):
        raise PublishRefused("wrong key", "old key")
    if stream.disabled:
        raise PublishRefused("stream disabled", "stream disabled")
    if stream.status == "reconnecting":
        waiting = _continue_or_end(session, stream, attempt)
        if waiting is not None:
            return waiting
    # One query for both questions: is this publisher already known, and is
    # another one live? Engines that reuse client ids after a restart
    # (nginx-rtmp) send no service id; an ended broadcast only proves "this
    # publisher left" when a service id scopes its client id.
    relevant, live = _broadcasts_and_live_count(
        session, stream, attempt, count_live=limits.max_live_per_user > 0
    )
    for broadcast in relevant:
        if _is_publisher(broadcast, attempt):
            if broadcast.ended_at is None:
                if attempt.node_id is not None and stream.node_id != attempt.node_id:
                    # Another node with the same client ids (nginx-rtmp numbers
                    # its clients from 1): not the live publisher after all.
                    raise PublishRefused(
                        "stream already live with another publisher", "already live"
                    )
                # A repeated on_publish of the live publisher.
                return _broadcast(session, broadcast)
            raise PublishRefused("publisher already ended")
    if any(broadcast.ended_at is None for broadcast in relevant):
        raise PublishRefused("stream already live with another publisher", "already live")
    _check_live_limit(live, limits.max_live_per_user)
    broadcast = writes.insert_row(
        session,
        Broadcast,
        {
            "stream_id": stream.id,
            "client_id": attempt.client_id,
            "server_id": attempt.server_id,
            "service_id": attempt.service_id,
            "protocol": attempt.protocol,
            "ip": attempt.ip[:64],
            "started_at": utcnow(),
        },
        (writes.RowKey(Stream, stream.id), {"status": "live", "node_id": attempt.node_id}),
    )
    view = events.broadcast_view(broadcast)
    events.raise_event(
        session, events.StreamChanged(stream.public_id, "live", stream.disabled, view)
    )
    events.raise_event(
        session,
        events.BroadcastStarted(
            stream.public_id,
            broadcast.id,
            attempt.protocol,
            webhooks=stream.owner_webhooks is not False,
        ),
    )
    return broadcast


# The publish path's statements, built once with their parameters bound at
# each call (building one costs more CPU than running it from SQLAlchemy's
# cache). They read plain rows, not entities (`_rows`): loading entities
# costs more CPU than the statements; the writes go by primary key
# (`writes.RowKey`) and the events are built from the values written.
#
# The stream named `stream_name`, locked: the columns the publish control
# reads, and whether its owner has an enabled webhook endpoint
# (`owner_webhooks`: without one, the events of this unit of work queue no
# webhook job, which would find nobody to deliver to). Read from the row as
# it is now, under the lock (a stream the session holds is not consulted).
_OWNER_WEBHOOKS = (
    select(WebhookEndpoint.id)
    .where(WebhookEndpoint.owner_id == Stream.owner_id, WebhookEndpoint.enabled.is_(True))
    .exists()
)
_STREAM_COLUMNS = (
    Stream.id,
    Stream.public_id,
    Stream.owner_id,
    Stream.stream_key,
    Stream.status,
    Stream.disabled,
    Stream.node_id,
    Stream.reconnect_window,
    Stream.reconnect_deadline,
    _OWNER_WEBHOOKS.label("owner_webhooks"),
)
# ... and the `draining` flag of the media node `node_id` (None: no row).
_NODE_DRAINING = (
    select(MediaNode.draining).where(MediaNode.id == bindparam("node_id")).scalar_subquery()
)
_STREAM = select(*_STREAM_COLUMNS, _NODE_DRAINING.label("node_draining")).where(
    Stream.public_id == bindparam("stream_name")
)
_LOCK = _STREAM.with_for_update()
# ... with its owner's row (the live limit).
_LOCK_WITH_OWNER = _STREAM.join(User, User.id == Stream.owner_id).with_for_update()
# Every column of a broadcast (`writes.loaded` makes its entity of them).
_BROADCAST_COLUMNS = tuple(getattr(Broadcast, column.key) for column in Broadcast.__table__.c)
# The stream, locked, with the open broadcast of the publisher `client_id`,
# `server_id` (its columns prefixed `broadcast_`; `broadcast_id` None if none).
_LOCK_WITH_PUBLISHER = (
    select(
        *_STREAM_COLUMNS,
        *(column.label(f"broadcast_{column.key}") for column in _BROADCAST_COLUMNS),
    )
    .select_from(Stream)
    .outerjoin(
        Broadcast,
        and_(
            Broadcast.stream_id == Stream.id,
            Broadcast.client_id == bindparam("client_id"),
            Broadcast.server_id == bindparam("server_id"),
            Broadcast.ended_at.is_(None),
        ),
    )
    .where(Stream.public_id == bindparam("stream_name"))
    .with_for_update(of=Stream)
)
# The stream's (`stream_id`) open broadcasts, and the ended ones of the
# publisher `client_id`, `server_id`, `service_id` when a service id scopes
# its client id (see `start_broadcast`).
_RELEVANT = and_(
    Broadcast.stream_id == bindparam("stream_id"),
    or_(
        Broadcast.ended_at.is_(None),
        and_(
            Broadcast.client_id == bindparam("client_id"),
            Broadcast.server_id == bindparam("server_id"),
            Broadcast.service_id == bindparam("service_id"),
            Broadcast.service_id != "",
        ),
    ),
)
_RELEVANT_BROADCASTS = select(*_BROADCAST_COLUMNS).where(_RELEVANT)
# ... with how many other streams (not `stream_id`) of the owner (`owner_id`)
# are live or reconnecting (`live`; a row with no broadcast when none is relevant).
_LIVE = (
    select(func.count(Stream.id))
    .where(
        Stream.owner_id == bindparam("owner_id"),
        Stream.status.in_(("live", "reconnecting")),
        Stream.id != bindparam("stream_id"),
    )
    .scalar_subquery()
)
_COUNTED = select(_LIVE.label("live")).subquery()
_RELEVANT_AND_LIVE = (
    select(_COUNTED.c.live, *_BROADCAST_COLUMNS)
    .select_from(_COUNTED)
    .outerjoin(Broadcast, _RELEVANT)
)


def _broadcast(session: Session, row: Row, prefix: str = "") -> Broadcast:
    """The Broadcast of a plain row read with `_BROADCAST_COLUMNS` (named
    with `prefix`): the session's object for it, or one made of the row."""
    mapping = row._mapping
    values = {column.key: mapping[prefix + column.key] for column in _BROADCAST_COLUMNS}
    return writes.loaded(session, Broadcast, values)


def _rows(session: Session, statement: Executable, parameters: dict) -> CursorResult:
    """Run `statement` in the session's transaction for plain rows (no
    entities, no identity map); what the session holds unflushed goes first,
    as before an ORM query."""
    session.flush()  # nothing is sent when clean
    return session.connection().execute(statement, parameters)


def _continue_or_end(session: Session, stream: Row, attempt: PublishAttempt) -> Broadcast | None:
    """A publisher of a reconnecting stream (its key or ticket already
    checked): within the deadline it continues the open broadcast (returned);
    after it, that broadcast ends (None: a new one follows)."""
    broadcast = open_broadcast(session, stream)
    if broadcast is not None and not reconnect.deadline_passed(stream):
        return reconnect.resume(
            session,
            stream,
            broadcast,
            node_id=attempt.node_id,
            client_id=attempt.client_id,
            server_id=attempt.server_id,
            service_id=attempt.service_id,
            protocol=attempt.protocol,
            ip=attempt.ip,
        )
    reconnect.end_waiting(session, stream, reconnect.TIMED_OUT)
    return None


def _is_publisher(broadcast: Row, attempt: PublishAttempt) -> bool:
    return (broadcast.client_id, broadcast.server_id, broadcast.service_id) == (
        attempt.client_id,
        attempt.server_id,
        attempt.service_id,
    )


def _broadcasts_and_live_count(
    session: Session, stream: Row, attempt: PublishAttempt, count_live: bool
) -> tuple[list[Row], int]:
    """The stream's open broadcasts and those of the publisher of `attempt`
    (`_RELEVANT`, as plain rows) and, with `count_live`,
    how many of the owner's other streams are live or reconnecting, in one
    statement. The caller holds the owner's row lock (taken with the
    stream's in `start_broadcast`) so that two of their streams going live
    at once cannot both slip under the limit: this statement comes after
    the lock, so its count sees what the other one committed (a count in
    the locking statement itself would use the snapshot taken before
    waiting for the lock)."""
    parameters = {
        "stream_id": stream.id,
        "client_id": attempt.client_id,
        "server_id": attempt.server_id,
        "service_id": attempt.service_id,
    }
    if not count_live:
        return _rows(session, _RELEVANT_BROADCASTS, parameters).all(), 0
    parameters["owner_id"] = stream.owner_id
    rows = _rows(session, _RELEVANT_AND_LIVE, parameters).all()
    return [row for row in rows if row.id is not None], rows[0].live


def _check_live_limit(live: int, limit: int) -> None:
    """Refuse a publish that would put the owner over `limit` live streams
    (the cost guard; 0 = no limit; a reconnecting stream keeps its place);
    `live`: their other streams live now (`_broadcasts_and_live_count`)."""
    if limit > 0 and live >= limit:
        raise PublishRefused(f"live stream limit reached ({limit} at a time)", "live limit")


def end_broadcast(
    session: Session,
    stream_name: str,
    client_id: str,
    server_id: str = "",
    reason: str = "unpublish",
    node_id: str | None = None,
) -> Broadcast | None:
    """End the open broadcast of this publisher; status `ended` if it was the
    stream's current one. An unpublish (`reason` "unpublish") of a stream
    with a reconnect window makes it `reconnecting` instead: the broadcast
    stays open until the deadline (returned all the same).

    Duplicates, unknown client ids, late unpublishes of an older publisher
    and unpublishes from a media node (`node_id`) other than the one holding
    the stream change nothing and return None.
    """
    # The stream, locked, with this publisher's open broadcast (if any).
    parameters = {"stream_name": stream_name, "client_id": client_id, "server_id": server_id}
    stream = _rows(session, _LOCK_WITH_PUBLISHER, parameters).first()
    if stream is None:
        return None
    if node_id is not None and stream.node_id is not None and stream.node_id != node_id:
        return None  # engines number their clients alike: another node's publisher
    if stream.broadcast_id is None:
        return None
    broadcast = _broadcast(session, stream, prefix="broadcast_")
    if reason in reconnect.RECONNECTABLE:
        if stream.status == "reconnecting":
            return None  # a repeated unpublish: the publisher is gone already
        if stream.reconnect_window > 0 and not stream.disabled:
            reconnect.begin_reconnect(session, stream, broadcast)
            return broadcast
    # Once committed, the upload pipeline writes the replay.
    reconnect.close_broadcast(session, stream, broadcast, reason)
    return broadcast
