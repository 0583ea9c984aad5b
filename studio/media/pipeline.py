"""Hand-off from the studio (hooks, services, the directory watcher) to the
upload workers (`workers/`), through one RQ queue.

Triggers are cheap and may repeat or get lost: each one marks the stream
dirty and enqueues at most one pending sync job per stream; the job syncs
until the stream is clean (see `workers.pipeline.sync`). A periodic sweep in the
watcher re-triggers anything left behind.

Jobs are declared (queue, timeout, retries) in `studio.media.jobs`; the web
process never imports the worker code, the pipeline or the storage client. An engine
that reports its segments (`SegmentReady`) has its numbers, lengths and
files kept for the sync job, which uses them as given instead of deriving
them from the playlist or the files.

Media nodes: a stream's files sit on the node whose engine holds it, so its
sync goes to that node's queue (`jobs.node_queue`): the watcher of node X and
on_hls of a hook URL naming X pass X. The node last asked to sync a stream is
kept in Redis (`Keys.node`) so that its replay and its purge, which read the
local files too, go to the same node's replays queue. The default node keeps
today's queues and writes no such key.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import redis
from flask import Flask
from rq import Queue
from rq.serializers import JSONSerializer

from studio.core import events
from studio.core.commands import SegmentReady
from studio.media import jobs
from studio.redis_client import get_redis

log = logging.getLogger(__name__)

QUEUE_NAME = jobs.UPLOADS
# Replays wait behind live segments: workers take jobs from QUEUES in order.
REPLAY_QUEUE_NAME = jobs.REPLAYS
QUEUES = jobs.QUEUES
# Stream names become file and object names (the engine's <stream>.m3u8).
STREAM_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
SYNC_JOB = jobs.SYNC_STREAM.name
FINALIZE_JOB = jobs.FINALIZE_BROADCAST.name
PURGE_JOB = jobs.PURGE_STREAM.name
THUMBNAIL_JOB = jobs.MAKE_THUMBNAIL.name
DEFAULT_NODE = jobs.DEFAULT_NODE
# A queued sync older than this is assumed lost and may be enqueued again.
QUEUED_TTL = 60
# At most one thumbnail job per broadcast in this many seconds.
THUMBNAIL_INTERVAL = 10
# Reported segments wait this long for the sync job (a stream idle for an
# hour has had its segments synced, or they are orphans).
REPORTED_TTL = 3600
# How long the node of a stream's last sync is remembered (the watcher's
# sweep finalizes broadcasts ended up to a day ago).
NODE_TTL = 86400


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

    @staticmethod
    def reported(stream: str) -> str:
        """Segments the engine reported (sequence number -> length and file)."""
        return f"studio:media:reported:{stream}"

    @staticmethod
    def node(stream: str) -> str:
        """The media node (other than the default) whose files the stream's
        last sync was queued for."""
        return f"studio:media:node:{stream}"


@dataclass(frozen=True)
class ReportedSegment:
    """A segment as the engine reported it: its length and file name."""

    duration: float
    file_name: str


def media_queue(connection: redis.Redis, name: str = QUEUE_NAME) -> Queue:
    """An RQ queue of the upload pipeline (JSON-serialized jobs)."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def request_sync(connection: redis.Redis, stream: str, node_id: str = DEFAULT_NODE) -> bool:
    """Ask for the stream's local HLS files on media node `node_id` to be
    synced to the bucket (by that node's workers).

    Marks the stream dirty, then enqueues a job unless one is already
    waiting. Returns True if a job was enqueued. Raises ValueError for a bad
    node id, redis errors (callers that must not fail catch them: the local
    directory is the buffer).
    """
    queue = jobs.node_queue(jobs.UPLOADS, node_id)
    connection.set(Keys.dirty(stream), 1)
    if not connection.set(Keys.queued(stream), 1, nx=True, ex=QUEUED_TTL):
        return False
    if node_id != DEFAULT_NODE:
        connection.set(Keys.node(stream), node_id, ex=NODE_TTL)
    jobs.SYNC_STREAM.enqueue(connection, stream, queue=queue)
    return True


def files_node(connection: redis.Redis, stream: str) -> str:
    """The media node holding the stream's local files: the one its last
    sync was queued for, else the default node. Raises redis errors."""
    node_id = connection.get(Keys.node(stream))
    return node_id.decode() if isinstance(node_id, bytes) else node_id or DEFAULT_NODE


def request_finalize(connection: redis.Redis, broadcast_id: int, stream: str | None = None) -> None:
    """Enqueue the replay job of an ended broadcast (idempotent job), on the
    replays queue of the node holding `stream`'s files (it waits for them to
    reach the bucket). Raises redis errors."""
    node_id = files_node(connection, stream) if stream else DEFAULT_NODE
    queue = jobs.node_queue(jobs.REPLAYS, node_id)
    jobs.FINALIZE_BROADCAST.enqueue(connection, int(broadcast_id), queue=queue)


def request_thumbnail(connection: redis.Redis, broadcast_id: int) -> bool:
    """Queue a thumbnail of the broadcast's latest segment, unless one was
    queued in the last THUMBNAIL_INTERVAL seconds. On the replays queue:
    behind live segments, and consumed by every worker role. Returns True if
    a job was queued; raises redis errors."""
    if not connection.set(Keys.thumbnail(broadcast_id), 1, nx=True, ex=THUMBNAIL_INTERVAL):
        return False
    jobs.MAKE_THUMBNAIL.enqueue(connection, int(broadcast_id))
    return True


def request_purge(connection: redis.Redis, stream: str) -> None:
    """Enqueue the purge of a deleted stream's media (idempotent job), on
    the replays queue of the node holding its local files."""
    queue = jobs.node_queue(jobs.REPLAYS, files_node(connection, stream))
    jobs.PURGE_STREAM.enqueue(connection, stream, queue=queue)


def request_move(connection: redis.Redis, stream: str) -> None:
    """Enqueue the move of a stream's objects to the prefix its visibility
    asks for (idempotent job)."""
    jobs.MOVE_STREAM.enqueue(connection, stream)


def recheck_visibility(connection: redis.Redis, stream, private: bool) -> None:
    """After a job that does not hold the sync lock (replay, thumbnail) wrote
    under the prefix of `private`: if the stream's visibility changed
    meanwhile, the move may have run before the write, so queue it again
    (idempotent) to carry the late object over. Redis down is logged."""
    from studio.extensions import db

    db.session.refresh(stream)
    if stream.private == private:
        return
    try:
        request_move(connection, stream.public_id)
    except redis.RedisError:
        log.error("could not queue the move of stream %s's objects (Redis down)", stream.public_id)


def segment_ready(
    connection: redis.Redis, segment: SegmentReady, node_id: str = DEFAULT_NODE
) -> bool:
    """Media node `node_id`'s engine reported a complete segment: keep what
    it said (number, length, file) for the sync job and ask that node for a
    sync of its stream.

    A segment of another app or of a name that is no stream name is ignored
    (False); a bad node id raises ValueError before anything is written.
    Redis being down is logged (engines ignore failures of this callback
    anyway; the watcher's sweep picks the file up and derives the length
    itself).
    """
    jobs.check_node_id(node_id)
    if segment.app != "live" or not STREAM_NAME.match(segment.stream or ""):
        log.warning("segment of unknown app/stream ignored: %r/%r", segment.app, segment.stream)
        return False
    reported = {"duration": segment.duration, "file": PurePosixPath(segment.path).name}
    key = Keys.reported(segment.stream)
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hset(key, str(segment.seq), json.dumps(reported)).expire(key, REPORTED_TTL)
            pipe.execute()
        request_sync(connection, segment.stream, node_id)
    except redis.RedisError:
        log.warning("could not queue a sync of %s (Redis down)", segment.stream)
        return False
    return True


def reported_segments(connection: redis.Redis, stream: str) -> dict[int, ReportedSegment]:
    """The segments of `stream` the engine reported and the sync has not
    recorded yet, by sequence number. Raises redis errors."""
    reported = {}
    for seq, value in connection.hgetall(Keys.reported(stream)).items():
        facts = json.loads(value)
        reported[int(seq)] = ReportedSegment(float(facts["duration"]), str(facts["file"]))
    return reported


def forget_reported(connection: redis.Redis, stream: str, seqs: list[int]) -> None:
    """Drop reported segments once recorded. Raises redis errors."""
    if seqs:
        connection.hdel(Keys.reported(stream), *(str(seq) for seq in seqs))


def _broadcast_ended(event: events.BroadcastEnded) -> None:
    """Queue the replay of an ended broadcast. Redis being down is logged;
    the watcher's sweep finalizes ended broadcasts later."""
    try:
        request_finalize(get_redis(), event.broadcast_id, event.stream)
    except redis.RedisError:
        log.warning("could not queue the replay of broadcast %s (Redis down)", event.broadcast_id)


def _stream_deleted(event: events.StreamDeleted) -> None:
    """Queue the purge of a deleted stream's media. Redis being down is
    logged (the objects stay until purged by hand)."""
    try:
        request_purge(get_redis(), event.stream)
    except redis.RedisError:
        log.error("could not queue the purge of deleted stream %s (Redis down)", event.stream)


def _visibility_changed(event: events.VisibilityChanged) -> None:
    """Queue the move of a stream's objects between the public and private
    prefixes. Redis being down is logged (the next change of visibility, or
    `workers.jobs.move_stream` by hand, moves them)."""
    try:
        request_move(get_redis(), event.stream)
    except redis.RedisError:
        log.error("could not queue the move of stream %s's objects (Redis down)", event.stream)


def init_app(app: Flask) -> None:
    """Queue replays of ended broadcasts and purges of deleted streams after
    each commit. No I/O."""
    events.subscribe(events.BroadcastEnded, _broadcast_ended)
    events.subscribe(events.StreamDeleted, _stream_deleted)
    events.subscribe(events.VisibilityChanged, _visibility_changed)
