"""The broadcast a local segment belongs to, told by its modification time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import bindparam, select, true
from sqlalchemy.orm import aliased

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


# Built once (every sync pass runs it): only the parameter changes. Each
# stream's RECENT newest broadcasts (LATERAL: its index on stream_id serves).
_RECENT = (
    select(Broadcast)
    .where(Broadcast.stream_id == Stream.id)
    .order_by(Broadcast.started_at.desc(), Broadcast.id.desc())
    .limit(RECENT)
    .lateral()
)
_RECENT_BROADCAST = aliased(Broadcast, _RECENT)
_STREAMS_AND_BROADCASTS = (
    select(Stream, _RECENT_BROADCAST)
    .outerjoin(_RECENT, true())
    .where(Stream.public_id.in_(bindparam("public_ids", expanding=True)))
    .order_by(Stream.id, _RECENT.c.started_at.desc(), _RECENT.c.id.desc())
)


def streams_and_broadcasts(
    public_ids: Iterable[str],
) -> dict[str, tuple[Stream, list[Broadcast]]]:
    """The streams among `public_ids` that exist, each with its RECENT
    newest broadcasts (newest first), in one query."""
    found: dict[str, tuple[Stream, list[Broadcast]]] = {}
    public_ids = list(public_ids)
    if not public_ids:
        return found
    for stream, broadcast in db.session.execute(
        _STREAMS_AND_BROADCASTS, {"public_ids": public_ids}
    ):
        _, broadcasts = found.setdefault(stream.public_id, (stream, []))
        if broadcast is not None:
            broadcasts.append(broadcast)
    return found


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
