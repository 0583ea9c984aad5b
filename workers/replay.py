"""Replay: when a broadcast ends, its VOD playlist goes to the bucket once
every segment of it is there."""

from __future__ import annotations

import logging
import time

from flask import Flask

from studio.extensions import db
from studio.models import Broadcast, utcnow
from studio.redis_client import get_redis
from workers import local_hls
from workers.context import job_app
from workers.sync import _recent_broadcasts, broadcast_for, sync_now
from workers.vod import write_replay

log = logging.getLogger(__name__)
POLL = 0.25
# Seconds after the end before the replay may be written: the engine's last
# fragment is closed by then (see sync.QUIET_AFTER_END), so the wait is short
# and a worker is held only briefly.
SETTLE = 0.6


class ReplayIncomplete(Exception):
    """Segments of the broadcast are still on local disk (bucket down?); the
    job is retried by RQ and a later sync completes the replay."""


def finalize_broadcast(broadcast_id: int) -> dict:
    """Job: sync the stream a last time, wait (bounded) until no local segment
    of the broadcast is left, write its replay playlist, mark it ready and
    announce it. Idempotent: a second run rewrites the same playlist.

    Raises ReplayIncomplete (after writing what is there) if segments are
    still on disk at the deadline, so RQ retries later.
    """
    with job_app() as app:
        broadcast = db.session.get(Broadcast, int(broadcast_id))
        if broadcast is None:
            return {"status": "missing"}
        if broadcast.ended_at is None:
            return {"status": "live"}  # finalized when it ends
        fragment = float(app.config["HLS_FRAGMENT"])
        deadline = time.monotonic() + max(30.0, 5 * fragment)
        connection = get_redis(app)
        stream = broadcast.stream.public_id
        while True:
            sync_now(app, connection, stream)
            db.session.expire_all()
            pending = pending_segments(app, broadcast)
            settled = (utcnow() - broadcast.ended_at).total_seconds() >= SETTLE
            if (not pending and settled) or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        written = write_replay(app, broadcast)
        if pending:
            raise ReplayIncomplete(f"{len(pending)} segments of broadcast {broadcast.id} pending")
        return {"status": "ready" if written else "empty", "broadcast": broadcast.id}


def pending_segments(app: Flask, broadcast: Broadcast) -> list[local_hls.LocalSegment]:
    """Local `.ts` files (complete or not) that belong to the broadcast."""
    stream = broadcast.stream
    broadcasts = _recent_broadcasts(stream)
    return [
        segment
        for segment in local_hls.local_segments(app.config["HLS_DIR"], stream.public_id)
        if (owner := broadcast_for(broadcasts, segment.mtime)) is not None
        and owner.id == broadcast.id
    ]
