"""Replay: a broadcast's VOD playlist in the bucket, written from its
recorded segments (when it is finalized, and again when a late segment of a
finalized broadcast arrives)."""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import select

from studio import metrics
from studio.core.replays import mark_replay_ready
from studio.extensions import db
from studio.media import pipeline
from studio.models import Broadcast, Segment, utcnow
from studio.redis_client import get_redis
from studio.storage import gcs, layout
from workers.pipeline.playlists import PlaylistSegment, render_replay

log = logging.getLogger(__name__)


def write_replay(app: Flask, broadcast: Broadcast) -> bool:
    """Write the broadcast's VOD playlist from its recorded segments, set
    replay_ready_at and announce it. False (nothing written) if it has no
    segment. Raises gcs.StorageError if the bucket refuses."""
    rows = db.session.scalars(
        select(Segment).where(Segment.broadcast_id == broadcast.id).order_by(Segment.sequence)
    ).all()
    if not rows:
        log.info("broadcast %s has no segments: no replay", broadcast.id)
        return False
    segments = [
        PlaylistSegment(r.sequence, r.duration, broadcast.id, r.discontinuity, r.started_at)
        for r in rows
    ]
    public_id = broadcast.stream.public_id
    private = broadcast.stream.private
    name = layout.replay_playlist(public_id, broadcast.id, private)
    try:
        gcs.get_storage(app.config).upload_replay_playlist(name, render_replay(segments))
    except gcs.StorageError:
        metrics.UPLOAD_FAILURES.labels("replay").inc()
        raise
    if broadcast.ended_at is not None:
        lag = (utcnow() - broadcast.ended_at).total_seconds()
        metrics.UPLOAD_LAG.labels("replay").observe(max(0.0, lag))
    mark_replay_ready(db.session, broadcast, public_id)
    db.session.commit()
    pipeline.recheck_visibility(get_redis(app), broadcast.stream, private)
    log.info("replay of broadcast %s written: %d segments", broadcast.id, len(rows))
    return True
