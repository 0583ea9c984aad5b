"""What visitors can browse: streams live now, recent replays, and the
facts a replay is shown with (its duration). Read-only queries that take a
session, like the stream service."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager

from studio.models import Broadcast, Segment, Stream

HOME_LIVE_LIMIT = 24
LIVE_RANKED = 500  # the newest live streams the home page ranks by audience
HOME_REPLAYS_LIMIT = 12


def live_now(session: Session, limit: int = LIVE_RANKED) -> list[tuple[Stream, Broadcast]]:
    """Public streams live now or reconnecting (not disabled) with their open
    broadcast, the most recently started first."""
    query = (
        select(Stream, Broadcast)
        .join(Broadcast, Broadcast.stream_id == Stream.id)
        .where(
            # A reconnecting stream is still on: its publisher may be back any second.
            Stream.status.in_(("live", "reconnecting")),
            Stream.disabled.is_(False),
            Stream.visibility == "public",
            Broadcast.ended_at.is_(None),
        )
        .order_by(Broadcast.started_at.desc(), Broadcast.id.desc())
        .limit(limit)
    )
    return [(stream, broadcast) for stream, broadcast in session.execute(query)]


def recent_replays(session: Session, limit: int = HOME_REPLAYS_LIMIT) -> list[Broadcast]:
    """Broadcasts whose replay is written, of public streams that are not disabled,
    the most recently ended first (each with its stream loaded)."""
    query = (
        select(Broadcast)
        .join(Broadcast.stream)
        .options(contains_eager(Broadcast.stream))
        .where(
            Broadcast.replay_ready_at.is_not(None),
            Stream.disabled.is_(False),
            Stream.visibility == "public",
        )
        .order_by(Broadcast.ended_at.desc(), Broadcast.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def replay_durations(session: Session, broadcast_ids: Iterable[int]) -> dict[int, float]:
    """Seconds of video of each broadcast in the bucket (the sum of its
    segments: what its replay plays), in one query."""
    ids = list(broadcast_ids)
    if not ids:
        return {}
    query = (
        select(Segment.broadcast_id, func.sum(Segment.duration))
        .where(Segment.broadcast_id.in_(ids))
        .group_by(Segment.broadcast_id)
    )
    return {broadcast_id: float(total or 0) for broadcast_id, total in session.execute(query)}


def format_duration(seconds: float | None) -> str:
    """ "1:02:03" or "2:03" for a duration; "" when unknown."""
    if seconds is None:
        return ""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
