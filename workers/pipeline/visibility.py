"""A change of visibility: the stream's objects move between the bucket's
public (`live/`) and private (`private/`) prefixes.

Queued (job `workers.jobs.move_stream`) after a stream became private or
stopped being private (`studio.media.pipeline.request_move`). The job holds
the stream's sync lock, so no sync pass uploads while it runs; every pass
after it reads the new visibility and writes under the new prefix.

It copies the whole folder (names inside it are the same, and playlists name
segments relative to themselves, so they need no rewrite), points the
recorded segments at their new names, then deletes the old folder. Viewers
who may still watch lose the old URL and, on their player's next error, ask
the studio for the new one (with a signed cookie when it is private). Copies
of public objects already cached by the CDN stay there until their
Cache-Control expires, unless CDN_INVALIDATE is on: then a move to private
queues their invalidation (`workers.jobs.invalidate_cdn`); else `flask cdn
purge STREAM --run` removes them.
"""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy import select

from studio.extensions import db
from studio.media import pipeline
from studio.media.pipeline import Keys
from studio.models import Broadcast, Segment, Stream
from studio.redis_client import get_redis
from studio.storage import gcs, layout
from workers.pipeline import locks

log = logging.getLogger(__name__)

LOCK_WAIT = 60  # seconds; longer than one sync pass (its lock TTL)


def move(app: Flask, public_id: str) -> dict:
    """Move the stream's objects to the prefix of its current visibility.

    Idempotent: a second run finds the old folder empty. Raises
    gcs.StorageError if the bucket refuses (RQ retries; the old folder is
    deleted only after every copy succeeded).
    """
    stream = db.session.scalar(select(Stream).where(Stream.public_id == public_id))
    if stream is None:
        return {"status": "missing"}
    connection = get_redis(app)
    lock = connection.lock(Keys.lock(public_id), timeout=locks.LOCK_TTL, blocking_timeout=LOCK_WAIT)
    if not lock.acquire():
        raise TimeoutError(f"sync lock of {public_id} still held after {LOCK_WAIT}s")
    locks.acquired(lock)
    try:
        db.session.refresh(stream)  # the visibility as of now, under the lock
        private = stream.private
        source = layout.stream_prefix(public_id, not private)
        target = layout.stream_prefix(public_id, private)
        storage = gcs.get_storage(app.config)
        copied = storage.copy_prefix(source, target)
        broadcasts = select(Broadcast.id).where(Broadcast.stream_id == stream.id)
        for segment in db.session.scalars(
            select(Segment).where(
                Segment.broadcast_id.in_(broadcasts), Segment.object_name.startswith(source)
            )
        ):
            segment.object_name = target + segment.object_name.removeprefix(source)
        db.session.commit()
        # The next pass rewrites the live playlist under the new prefix even
        # if its text did not change.
        connection.delete(Keys.playlist(public_id))
        deleted = storage.delete_prefix(source)
    finally:
        locks.release(lock)
    log.info("stream %s moved to %s: %d objects", public_id, target, copied)
    if private and (copied or deleted):  # copies cached while public must leave the edge
        pipeline.request_cdn_invalidation(app, connection, public_id)
    return {"status": "moved", "to": target, "copied": copied, "deleted": deleted}
