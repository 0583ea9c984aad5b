"""Refused publishes, told to the creator: "a publish with an old key was
refused at 14:03 from 203.0.113.9".

Only refusals the creator can act on are kept (REFUSAL_REASONS), the last
KEEP per stream. An attacker hammering publish with a wrong key must not
write a row per attempt: each stream records at most one refusal per reason
every WINDOW seconds (a Redis key set with NX and an expiry decides, before
any write). A refusal recorded raises `PublishRefusedRecorded` (the
`publish.refused` webhook). The caller commits, in a unit of work of its own
(the publish itself was rolled back).
"""

from __future__ import annotations

import ipaddress
import logging

from redis import Redis, RedisError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from studio.core import events
from studio.models import PublishRefusal, Stream, utcnow

log = logging.getLogger(__name__)

# What the creator is told, in words (PublishRefused.kind).
REFUSAL_REASONS = ("old key", "stream disabled", "already live", "live limit")
KEEP = 5
WINDOW = 10  # seconds: at most one row per stream and reason in this time
_GATE_KEY = "studio:publish-refused:{}:{}"


def clean_address(ip: str) -> str:
    """The publisher's address if it is one (IPv4 or IPv6), else ""."""
    try:
        return str(ipaddress.ip_address((ip or "").strip()))
    except ValueError:
        return ""


def record_refused_publish(
    session: Session, redis: Redis, stream_name: str, ip: str, reason: str
) -> PublishRefusal | None:
    """Record a refused publish of `stream_name` unless it is no news to the
    creator (another reason, an unknown stream) or one with the same reason
    was recorded in the last WINDOW seconds; keeps the stream's last KEEP.
    Redis being down records nothing (logged). The caller commits."""
    if reason not in REFUSAL_REASONS:
        return None
    stream_id = session.scalar(select(Stream.id).where(Stream.public_id == stream_name))
    if stream_id is None:
        return None
    try:
        if not redis.set(_GATE_KEY.format(stream_id, reason), 1, nx=True, ex=WINDOW):
            return None
    except RedisError:
        log.warning("refused publish of stream=%s not recorded (Redis down)", stream_name)
        return None
    refusal = PublishRefusal(
        stream_id=stream_id, refused_at=utcnow(), ip=clean_address(ip), reason=reason
    )
    session.add(refusal)
    session.flush()
    older = (
        select(PublishRefusal.id)
        .where(PublishRefusal.stream_id == stream_id)
        .order_by(PublishRefusal.refused_at.desc(), PublishRefusal.id.desc())
        .offset(KEEP)
    )
    session.execute(delete(PublishRefusal).where(PublishRefusal.id.in_(older)))
    events.raise_event(
        session,
        events.PublishRefusedRecorded(stream_name, reason, refusal.ip, refusal.refused_at),
    )
    return refusal


def recent_refusals(session: Session, stream: Stream) -> list[PublishRefusal]:
    """The stream's recorded refusals, newest first (at most KEEP)."""
    query = (
        select(PublishRefusal)
        .where(PublishRefusal.stream_id == stream.id)
        .order_by(PublishRefusal.refused_at.desc(), PublishRefusal.id.desc())
        .limit(KEEP)
    )
    return list(session.scalars(query))


def last_refusals(session: Session, stream_ids: list[int]) -> dict[int, PublishRefusal]:
    """The newest recorded refusal of each of these streams (one query)."""
    if not stream_ids:
        return {}
    query = (
        select(PublishRefusal)
        .where(PublishRefusal.stream_id.in_(stream_ids))
        .order_by(
            PublishRefusal.stream_id, PublishRefusal.refused_at.desc(), PublishRefusal.id.desc()
        )
        .ext(distinct_on(PublishRefusal.stream_id))
    )
    return {refusal.stream_id: refusal for refusal in session.scalars(query)}


def newest_refusal_of_stream():
    """A LATERAL subquery: the newest refusal of the `streams` row beside it
    (outer-join it `ON true` after `Stream`; select it as
    `aliased(PublishRefusal, subquery)`)."""
    return (
        select(PublishRefusal)
        .where(PublishRefusal.stream_id == Stream.id)
        .order_by(PublishRefusal.refused_at.desc(), PublishRefusal.id.desc())
        .limit(1)
        .lateral()
    )


def describe(refusal: PublishRefusal) -> str:
    """What happened, in a sentence without its time and address."""
    return {
        "old key": "A publish with an old key was refused",
        "stream disabled": "A publish to this disabled stream was refused",
        "already live": "A second publisher was refused while the stream was already live",
        "live limit": "A publish was refused: your live stream limit was reached",
    }.get(refusal.reason, "A publish was refused")
