"""Segments: the pieces of a broadcast stored in the bucket, recorded once
uploaded so that its replay can be written from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from studio.models import Segment, utcnow


@dataclass(frozen=True)
class UploadedSegment:
    """A segment now in the bucket, with the facts its replay needs."""

    broadcast_id: int
    sequence: int
    duration: float
    object_name: str
    size: int
    discontinuity: bool = False
    started_at: datetime | None = None  # wall clock of its first frame


# On the table, not the ORM entity, with the rows as parameters: one statement
# compiled once for any number of rows (SQLAlchemy sends them as one
# multi-row INSERT) instead of an ORM insert built and compiled per batch.
_INSERT = insert(Segment.__table__).on_conflict_do_nothing(constraint="uq_segments_sequence")


def record_segments(
    session: Session, segments: list[UploadedSegment], uploaded_at: datetime | None = None
) -> None:
    """Record uploaded segments; a row already there (from an earlier,
    interrupted pass) is kept. Does not commit. Raises database errors."""
    if not segments:
        return
    moment = uploaded_at or utcnow()
    rows = [
        {
            "broadcast_id": segment.broadcast_id,
            "sequence": segment.sequence,
            "duration": segment.duration,
            "object_name": segment.object_name,
            "size": segment.size,
            "discontinuity": segment.discontinuity,
            "uploaded_at": moment,
            "started_at": segment.started_at,
        }
        for segment in segments
    ]
    session.execute(_INSERT, rows)
