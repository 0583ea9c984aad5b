"""Hand-off from the studio (hooks, services, the directory watcher) to the
upload workers (`workers/`), through one RQ queue.

Triggers are cheap and may repeat or get lost: each one marks the stream
dirty and enqueues at most one pending sync job per stream; the job syncs
until the stream is clean (see `workers.pipeline.sync`). A periodic sweep in the
watcher re-triggers anything left behind.

Jobs are declared (queue, timeout, retries) in `workers.jobs`, which imports
neither the pipeline nor the storage client in the web process.
"""

from __future__ import annotations

import logging
import re
from functools import partial

import redis
from flask import Flask
from rq import Queue
from rq.serializers import JSONSerializer

from workers import jobs

log = logging.getLogger(__name__)

QUEUE_NAME = jobs.UPLOADS
# Replays wait behind live segments: workers take jobs from QUEUES in order.
REPLAY_QUEUE_NAME = jobs.REPLAYS
QUEUES = jobs.QUEUES
# Stream names become file and object names (the engine's <stream>.m3u8).
STREAM_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
SYNC_JOB = jobs.sync_stream.name
FINALIZE_JOB = jobs.finalize_broadcast.name
PURGE_JOB = jobs.purge_stream.name
THUMBNAIL_JOB = jobs.make_thumbnail.name
# A queued sync older than this is assumed lost and may be enqueued again.
QUEUED_TTL = 60
# At most one thumbnail job per broadcast in this many seconds.
THUMBNAIL_INTERVAL = 10


class Keys:
    """Redis keys of the per-stream sync protocol."""

    @staticmethod
    def dirty(stream: str) -> str:
        return f"studio:media:dirty:{stream}"

    @staticmethod
    def queued(stream: str) -> str:
        return f"studio:media:queued:{stream}"

    @staticmethod
    def lock(stream: str) -> str:
        return f"studio:media:lock:{stream}"

    @staticmethod
    def finalize_queued(broadcast_id: int) -> str:
        """Set while a replay job queued by the watcher's sweep is pending."""
        return f"studio:media:finalize:{broadcast_id}"

    @staticmethod
    def thumbnail(broadcast_id: int) -> str:
        """Set for THUMBNAIL_INTERVAL seconds after a thumbnail job is queued."""
        return f"studio:media:thumbnail:{broadcast_id}"

    @staticmethod
    def playlist(stream: str) -> str:
        """Digest and local mtime of the live playlist last put in the bucket."""
        return f"studio:media:playlist:{stream}"


def media_queue(connection: redis.Redis, name: str = QUEUE_NAME) -> Queue:
    """An RQ queue of the upload pipeline (JSON-serialized jobs)."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def request_sync(connection: redis.Redis, stream: str) -> bool:
    """Ask for the stream's local HLS files to be synced to the bucket.

    Marks the stream dirty, then enqueues a job unless one is already
    waiting. Returns True if a job was enqueued. Raises redis errors (callers
    that must not fail catch them: the local directory is the buffer).
    """
    connection.set(Keys.dirty(stream), 1)
    if not connection.set(Keys.queued(stream), 1, nx=True, ex=QUEUED_TTL):
        return False
    jobs.sync_stream.enqueue(connection, stream)
    return True


def request_finalize(connection: redis.Redis, broadcast_id: int) -> None:
    """Enqueue the replay job of an ended broadcast (idempotent job)."""
    jobs.finalize_broadcast.enqueue(connection, int(broadcast_id))


def request_thumbnail(connection: redis.Redis, broadcast_id: int) -> bool:
    """Queue a thumbnail of the broadcast's latest segment, unless one was
    queued in the last THUMBNAIL_INTERVAL seconds. On the replays queue:
    behind live segments, and consumed by every worker role. Returns True if
    a job was queued; raises redis errors."""
    if not connection.set(Keys.thumbnail(broadcast_id), 1, nx=True, ex=THUMBNAIL_INTERVAL):
        return False
    jobs.make_thumbnail.enqueue(connection, int(broadcast_id))
    return True


def broadcast_ended(app: Flask, broadcast_id: int) -> None:
    """After-commit action of end_broadcast: queue the replay. Redis being
    down is logged; the watcher's sweep finalizes ended broadcasts later."""
    from studio.redis_client import get_redis

    try:
        request_finalize(get_redis(app), broadcast_id)
    except redis.RedisError:
        log.warning("could not queue the replay of broadcast %s (Redis down)", broadcast_id)


def request_purge(connection: redis.Redis, stream: str) -> None:
    """Enqueue the purge of a deleted stream's media (idempotent job)."""
    jobs.purge_stream.enqueue(connection, stream)


def stream_deleted(app: Flask, stream: str) -> None:
    """After-commit action of delete_stream: queue the purge of its media.
    Redis being down is logged (the objects stay until purged by hand)."""
    from studio.redis_client import get_redis

    try:
        request_purge(get_redis(app), stream)
    except redis.RedisError:
        log.error("could not queue the purge of deleted stream %s (Redis down)", stream)


def _on_hls(app: Flask, callback) -> None:
    """SRS on_hls: the segment is complete on disk; sync its stream."""
    from studio.redis_client import get_redis

    if callback.app != "live" or not STREAM_NAME.match(callback.stream or ""):
        log.warning("on_hls of unknown app/stream ignored: %r/%r", callback.app, callback.stream)
        return
    try:
        request_sync(get_redis(app), callback.stream)
    except redis.RedisError:
        # SRS ignores on_hls failures anyway; the sweep will pick the file up.
        log.warning("could not queue a sync of %s (Redis down)", callback.stream)


def init_app(app: Flask) -> None:
    """Register the on_hls handler the hooks blueprint calls. No I/O."""
    app.extensions["studio_on_hls"] = partial(_on_hls, app)
