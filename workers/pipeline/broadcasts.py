"""The broadcast a local segment belongs to, told by its modification time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import bindparam, select

from studio.extensions import db
from studio.models import Broadcast, Stream

# A segment's mtime may precede the broadcast's start by a little (clocks of
# hook handler and engine) and follow its end by the engine's final flush.
START_SLACK = timedelta(seconds=2)
END_GRACE = timedelta(seconds=15)
# Broadcasts considered per stream: older ones cannot own a file still on disk.
RECENT = 20


@dataclass(frozen=True)
class Window:
    """When a broadcast ran, as read at the start of a sync pass (a plain
    copy: it stays readable after the pass commits and expires the rows)."""

    id: int
    started_at: datetime
    ended_at: datetime | None


B = TypeVar("B", Broadcast, Window)


# Built once (every sync pass runs it): only the parameter changes.
_STREAM_AND_BROADCASTS = (
    select(Stream, Broadcast)
    .outerjoin(Broadcast, Broadcast.stream_id == Stream.id)
    .where(Stream.public_id == bindparam("public_id"))
    .order_by(Broadcast.started_at.desc(), Broadcast.id.desc())
    .limit(RECENT)
)


def stream_and_broadcasts(public_id: str) -> tuple[Stream | None, list[Broadcast]]:
    """The stream and its RECENT newest broadcasts (newest first), in one query."""
    rows = db.session.execute(_STREAM_AND_BROADCASTS, {"public_id": public_id}).all()
    if not rows:
        return None, []
    return rows[0][0], [broadcast for _, broadcast in rows if broadcast is not None]


def windows(broadcasts: list[Broadcast]) -> list[Window]:
    """Plain copies of the broadcasts' windows, in the same order."""
    return [Window(b.id, b.started_at, b.ended_at) for b in broadcasts]


def broadcast_for(broadcasts: list[B], mtime: float) -> B | None:
    """The broadcast a segment closed at `mtime` belongs to: the newest one
    whose window [start, end + grace] contains it; failing that, one that
    started just after it (the engine's and the studio's clocks differ a little)."""
    moment = datetime.fromtimestamp(mtime, UTC)
    for slack in (timedelta(0), START_SLACK):
        for broadcast in broadcasts:  # newest first
            ended = broadcast.ended_at
            if broadcast.started_at - slack <= moment and (
                ended is None or moment <= ended + END_GRACE
            ):
                return broadcast
    return None
