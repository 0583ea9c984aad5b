"""Finalize: when a broadcast ends, its replay goes to the bucket once every
segment of it is there."""

from __future__ import annotations

import logging
import time

from flask import Flask

from studio.extensions import db
from studio.models import Broadcast, utcnow
from studio.redis_client import get_redis
from workers.pipeline import local_hls
from workers.pipeline.broadcasts import Window, broadcast_for
from workers.pipeline.replay import write_replay
from workers.pipeline.sync import nothing_new, sync_now

log = logging.getLogger(__name__)
POLL = 0.25
# Seconds after the end before the replay may be written: the engine's last
# fragment is closed by then (see sync.QUIET_AFTER_END), so the wait is short
# and a worker is held only briefly.
SETTLE = 0.6


class ReplayIncomplete(Exception):
    """Segments of the broadcast are still on local disk (bucket down?); the
    job is retried by RQ and a later sync completes the replay."""


def finalize(app: Flask, broadcast_id: int) -> dict:
    """Sync the stream a last time, wait (bounded) until no local segment of
    the broadcast is left, write its replay playlist, mark it ready and
    announce it. Idempotent: a second run rewrites the same playlist.

    Raises ReplayIncomplete (after writing what is there) if segments are
    still on disk at the deadline, so RQ retries later.
    """
    broadcast = db.session.get(Broadcast, int(broadcast_id))
    if broadcast is None:
        return {"status": "missing"}
    if broadcast.ended_at is None:
        return {"status": "live"}  # finalized when it ends
    fragment = float(app.config["HLS_FRAGMENT"])
    deadline = time.monotonic() + max(30.0, 5 * fragment)
    connection = get_redis(app)
    stream = broadcast.stream.public_id
    result = None
    while True:
        # Each pass reads the stream's broadcasts afresh, and tells who owns
        # the files it left on disk. While waiting for the end to settle, a
        # pass is made only when the directory shows something new.
        db.session.expire_all()
        if result is None or not nothing_new(app, connection, stream):
            result = sync_now(app, connection, stream)
        pending = pending_segments(app, stream, broadcast.id, result.windows)
        settled = (utcnow() - broadcast.ended_at).total_seconds() >= SETTLE
        if (not pending and settled) or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    written = write_replay(app, broadcast)
    if pending:
        raise ReplayIncomplete(f"{len(pending)} segments of broadcast {broadcast.id} pending")
    return {"status": "ready" if written else "empty", "broadcast": broadcast.id}


def pending_segments(
    app: Flask, stream: str, broadcast_id: int, windows: list[Window]
) -> list[local_hls.LocalSegment]:
    """Local `.ts` files (complete or not) of `stream` that belong to the
    broadcast, told by the stream's recent broadcast `windows` (newest first)."""
    return [
        segment
        for segment in local_hls.local_segments(app.config["HLS_DIR"], stream)
        if (owner := broadcast_for(windows, segment.mtime)) is not None and owner.id == broadcast_id
    ]
