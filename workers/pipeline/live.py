"""The live playlist in the bucket: the engine's window, rewritten to the
per-broadcast objects, naming only segments already uploaded."""

from __future__ import annotations

import hashlib
import logging
import time

from sqlalchemy import bindparam, select

from studio import metrics
from studio.extensions import db
from studio.media.pipeline import Keys
from studio.models import Segment
from studio.storage import gcs, layout
from workers.pipeline import locks
from workers.pipeline.playlists import PlaylistSegment, live_window, render_live

log = logging.getLogger(__name__)


def write_live_playlist(
    app, storage, stream, broadcasts, playlist, uploaded, lock, result, synced_digest, written
):
    """Rewrite the engine's window for the bucket and upload it if it
    changed (its digest differs from `synced_digest`, the last one
    uploaded); what the bucket now has is noted on the Redis pipeline
    `written`, which the caller executes."""
    numbers = [entry.number for entry in playlist.entries]
    available = dict(_segments_in_bucket(broadcasts, numbers))
    available.update(uploaded)
    window = live_window(numbers, available)
    by_id = {b.id: b for b in broadcasts}
    last = by_id.get(window[-1].broadcast_id) if window else None
    ended = (
        last is not None
        and last.ended_at is not None
        and not any(b.ended_at is None for b in broadcasts)
    )
    text = render_live(stream.public_id, window, float(app.config["HLS_FRAGMENT"]), ended)
    if text is None:
        return
    digest = hashlib.sha256(text.encode()).hexdigest()
    key = Keys.playlist(stream.public_id)
    if synced_digest == digest.encode():
        written.hset(key, "mtime", playlist.mtime)  # seen: the sweep can rest
        return
    if lock is not None and not locks.still_ours(lock):
        return  # a newer pass owns the stream, and its playlist
    started = time.time()
    try:
        storage.upload_live_playlist(layout.live_playlist(stream.public_id, stream.private), text)
    except gcs.StorageError as exc:
        # Not marked dirty again (that would spin while the bucket is down):
        # the sweep sees the local playlist newer than the uploaded one.
        result.failed += 1
        metrics.UPLOAD_FAILURES.labels("playlist").inc()
        log.error("live playlist of %s not uploaded: %s", stream.public_id, exc)
        return
    metrics.UPLOAD_LAG.labels("playlist").observe(max(0.0, started - playlist.mtime))
    written.hset(key, mapping={"digest": digest, "mtime": playlist.mtime})
    result.playlist_written = True


# Built once (a pass runs it every time): only the parameters change.
_IN_BUCKET = select(
    Segment.sequence,
    Segment.duration,
    Segment.broadcast_id,
    Segment.discontinuity,
    Segment.started_at,
).where(
    Segment.broadcast_id.in_(bindparam("broadcasts", expanding=True)),
    Segment.sequence.in_(bindparam("numbers", expanding=True)),
)


def _segments_in_bucket(broadcasts, numbers) -> dict[int, PlaylistSegment]:
    """Recorded segments among `numbers` (newest broadcast wins a number)."""
    if not numbers or not broadcasts:
        return {}
    order = {b.id: i for i, b in enumerate(broadcasts)}  # 0 = newest
    rows = db.session.execute(_IN_BUCKET, {"broadcasts": list(order), "numbers": numbers}).all()
    found: dict[int, PlaylistSegment] = {}
    for sequence, duration, broadcast_id, discontinuity, started_at in rows:
        current = found.get(sequence)
        if current is None or order[broadcast_id] < order[current.broadcast_id]:
            found[sequence] = PlaylistSegment(
                sequence, duration, broadcast_id, discontinuity, started_at
            )
    return found
