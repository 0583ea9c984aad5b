"""Purge: a deleted stream's media leaves the bucket and the local disk
(its chat's rows went with the stream's; its chat's Redis state goes here).

Queued (job `workers.jobs.purge_stream`) after a stream's deletion is
committed (`studio.media.pipeline.request_purge`). The stream's row is gone
by then, so its publisher was dropped and no new sync pass uploads anything
for it (a pass for an unknown stream leaves its files alone); the job takes
the stream's sync lock so a pass that started before the deletion finishes
before the bucket is emptied. With CDN_INVALIDATE on, it then queues the
invalidation of the stream's folders on Cloud CDN.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from studio.chat import limits as chat_limits
from studio.extensions import db
from studio.media import pipeline
from studio.media.jobs import TryAgainLater
from studio.media.pipeline import Keys
from studio.models import Stream
from studio.redis_client import get_redis
from studio.storage import gcs, layout
from workers.pipeline import local_hls, locks

log = logging.getLogger(__name__)

# A local file modified this recently may still be written by the engine (its
# publisher is dropped after the same commit that queued this job): it is
# left for a retry of the job.
QUIET_SECONDS = 5.0
LOCK_WAIT = 60  # seconds; longer than one sync pass (its lock TTL)


class StreamFilesBusy(TryAgainLater):
    """Local files of the deleted stream were written a moment ago; RQ
    retries the job and a later run removes them."""


def purge(app: Flask, stream: str) -> dict:
    """Delete every bucket object under the stream's prefix and its local
    HLS files (playlist, segments) that are not being written.

    Idempotent (a second run finds nothing to delete). Does nothing for a
    stream that still exists. Raises gcs.StorageError if the bucket refuses,
    StreamFilesBusy if fresh local files remain (after deleting everything
    else); RQ retries both.
    """
    if db.session.scalar(select(Stream.id).where(Stream.public_id == stream)) is not None:
        log.warning("purge of %s refused: the stream exists", stream)
        return {"status": "exists"}
    connection = get_redis(app)
    lock = connection.lock(Keys.lock(stream), timeout=locks.LOCK_TTL, blocking_timeout=LOCK_WAIT)
    if not lock.acquire():
        raise TimeoutError(f"sync lock of {stream} still held after {LOCK_WAIT}s")
    locks.acquired(lock)
    try:
        removed, busy = remove_local_files(app.config["HLS_DIR"], stream, time.time())
        storage = gcs.get_storage(app.config)
        objects = sum(
            storage.delete_prefix(layout.stream_prefix(stream, private))
            for private in (False, True)
        )
        connection.delete(Keys.playlist(stream), Keys.dirty(stream), Keys.recorded(stream))
        chat_limits.forget_stream(connection, stream)
    finally:
        locks.release(lock)
    log.info("stream %s purged: %d objects, %d local files", stream, objects, removed)
    if busy:
        raise StreamFilesBusy(f"{len(busy)} local files of {stream} still being written")
    pipeline.request_cdn_invalidation(app, connection, stream, private_too=True)
    return {"status": "purged", "objects": objects, "local_files": removed}


def remove_local_files(hls_dir: str | Path, stream: str, now: float) -> tuple[int, list[Path]]:
    """Delete `<stream>.m3u8` and `<stream>-<N>.ts` (and SRS's `.ts.tmp`)
    untouched for QUIET_SECONDS. Returns (deleted, still-busy paths)."""
    directory = local_hls.live_dir(hls_dir)
    candidates = [local_hls.playlist_path(hls_dir, stream)]
    candidates += [segment.path for segment in local_hls.local_segments(hls_dir, stream)]
    candidates += sorted(directory.glob(f"{stream}-*.ts.tmp"))
    removed, busy = 0, []
    for path in candidates:
        if path.suffix == ".tmp" and not local_hls.SEGMENT_FILE.match(path.name[: -len(".tmp")]):
            continue  # not a segment name of this stream (glob is looser)
        try:
            if now - path.stat().st_mtime < QUIET_SECONDS:
                busy.append(path)
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed, busy
