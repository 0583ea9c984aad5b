"""Hand-off from the studio (hooks, services, the directory watcher) to the
upload workers (`workers/`), through one RQ queue.

Triggers are cheap and may repeat or get lost: each one marks the stream
dirty and, unless the stream's sync runs (its lock is held: the holder looks
at the dirty flag again before it ends), adds it to its node's set of dirty
streams. A sync job drains that set, up to DRAIN_GROUP streams at a time
(their passes together, each stream under its own lock), for up to
DRAIN_SECONDS (see `workers.pipeline.drainer`); a trigger enqueues a job
only if none is waiting on the node's queue and the running drainers cannot
take the whole set. So segments of many streams share one RQ job, one
query and one commit, and a busy node runs about one job per drainer every
DRAIN_SECONDS instead of one per segment. A periodic sweep in the watcher
re-triggers anything left behind.

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
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import NamedTuple

import redis
from flask import Flask
from redis.client import Pipeline
from redis.commands.core import Script
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from studio.core import events
from studio.core.commands import SegmentReady
from studio.media import jobs
from studio.redis_client import batch, get_redis

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
DEFAULT_NODE = jobs.DEFAULT_NODE
# A queued sync older than this is assumed lost and may be enqueued again.
QUEUED_TTL = 60
# Seconds after which a queued flag with no job on the queue is taken for lost.
QUEUED_STALE = 10
# A sync job drains its node's dirty streams for this long, then queues
# another job if streams are left (fairness with replays; a bounded job).
DRAIN_SECONDS = 2.0
# With the set empty a drainer waits this long (blocked in Redis, no CPU) for
# the next dirty stream before it leaves: on a busy node one job takes the
# segments of many streams instead of one job each.
DRAIN_WAIT_SECONDS = 0.5
# A drainer renews its registration at each stream; one killed mid-drain
# stops counting after this many seconds (the sync lock's TTL).
DRAINING_TTL = 20
# A drainer takes up to this many dirty streams at once: their passes share
# one query, one commit and one Redis round trip (`workers.pipeline.sync`).
DRAIN_GROUP = 16
# On a busy node a drainer that has its first stream waits until that stream
# has waited this many fragments, so that others join its group
# (`workers.pipeline.drainer`): 0.25 s at 2 s fragments.
DRAIN_GATHER_FRAGMENTS = 0.125
# At most one live thumbnail per broadcast in this many seconds (cut by a sync pass).
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
    def dirty_streams(node_id: str) -> str:
        """The node's streams whose sync was asked for and not yet taken
        (a sorted set: by the time of the first ask, oldest taken first)."""
        return f"studio:media:dirty-streams:{node_id}"

    @staticmethod
    def queued(node_id: str) -> str:
        """Set while a sync job waits on the node's queue (it drains the set)."""
        return f"studio:media:queued:{node_id}"

    @staticmethod
    def draining(node_id: str) -> str:
        """How many sync jobs are draining the node's set of dirty streams."""
        return f"studio:media:draining:{node_id}"

    @staticmethod
    def lock(stream: str) -> str:
        return f"studio:media:lock:{stream}"

    @staticmethod
    def finalize_queued(broadcast_id: int) -> str:
        """Set while a replay job queued by the watcher's sweep is pending."""
        return f"studio:media:finalize:{broadcast_id}"

    @staticmethod
    def thumbnail(broadcast_id: int) -> str:
        """Set for THUMBNAIL_INTERVAL seconds after a sync pass claimed a thumbnail."""
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
    def recorded(stream: str) -> str:
        """Segments of the engine's live window recorded (so in the bucket),
        as the stream's last sync pass left them (sequence number -> its
        broadcast, length, discontinuity, start)."""
        return f"studio:media:recorded:{stream}"

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


# One atomic step, so that a trigger never sees the lock of a job that has
# already made its last check of the dirty flag, nor a drainer that has
# already found the set empty: mark the stream dirty; with its lock held,
# nothing else; otherwise add it to the node's set (and remember the node
# of its files), then claim the node's "queued" flag (1: the caller enqueues
# a job) unless a job waits already or the running drainers can take the
# whole set (each takes DRAIN_GROUP streams at a time: ARGV[6]). KEYS: dirty,
# lock, dirty streams, queued, draining, node of the files, and (with a
# segment the engine reported, ARGV[7..9]: its number, its facts, their TTL)
# the stream's reported segments, written first.
TRIGGER_SCRIPT = """
if ARGV[7] then
  redis.call('HSET', KEYS[7], ARGV[7], ARGV[8])
  redis.call('EXPIRE', KEYS[7], ARGV[9])
end
redis.call('SET', KEYS[1], 1)
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[6], ARGV[3], 'EX', ARGV[4]) end
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local draining = tonumber(redis.call('GET', KEYS[5]) or '0')
if draining > 0 and redis.call('ZCARD', KEYS[3]) <= draining * tonumber(ARGV[6]) then return 0 end
redis.call('SET', KEYS[4], 1, 'EX', ARGV[1])
return 1
"""
# A drainer takes the longest waiting dirty streams (up to ARGV[3]), or, with
# the set empty (or its time up: ARGV[2] = 1), stops counting as a drainer in
# the same step, so that a trigger after it enqueues a job. KEYS: dirty
# streams, draining.
NEXT_SCRIPT = """
if ARGV[2] == '0' then
  local oldest = redis.call('ZPOPMIN', KEYS[1], ARGV[3])
  if oldest[1] then
    redis.call('EXPIRE', KEYS[2], ARGV[1])
    local streams = {}
    for i = 1, #oldest, 2 do streams[#streams + 1] = oldest[i] end
    return streams
  end
end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return {}
"""
# The drainer count, lowered to the sync jobs actually running (ARGV[1]) if
# it says more. KEYS: draining.
REPAIR_SCRIPT = """
local counted = tonumber(redis.call('GET', KEYS[1]) or '0')
if counted <= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return counted - tonumber(ARGV[1])
"""
_scripts: dict[str, Script] = {}


def _script(connection: redis.Redis, name: str, text: str) -> Script:
    script = _scripts.get(name)
    if script is None:
        script = _scripts[name] = connection.register_script(text)
    return script


def request_sync(
    connection: redis.Redis,
    stream: str,
    node_id: str = DEFAULT_NODE,
    reported: tuple[int, ReportedSegment] | None = None,
) -> bool:
    """Ask for the stream's local HLS files on media node `node_id` to be
    synced to the bucket (by that node's workers), keeping first, in the same
    round trip, what the engine `reported` of a segment (number, facts).

    Marks the stream dirty and, unless its sync runs, adds it to the node's
    dirty streams; enqueues a job only if none is waiting on the node's
    queue and the running drainers cannot take the dirty streams (a
    running sync looks at the dirty flag again after each pass and after
    releasing the lock; a running drainer takes the set's streams until it
    is empty). Returns True if a job was enqueued. Raises ValueError for a
    bad node id, redis errors (callers that must not fail catch them: the
    local directory is the buffer).
    """
    queue = jobs.node_queue(jobs.UPLOADS, node_id)
    keys = [
        Keys.dirty(stream),
        Keys.lock(stream),
        Keys.dirty_streams(node_id),
        Keys.queued(node_id),
        Keys.draining(node_id),
        Keys.node(stream),
    ]
    node_arg = "" if node_id == DEFAULT_NODE else node_id
    args = [QUEUED_TTL, stream, node_arg, NODE_TTL, time.time(), DRAIN_GROUP]
    if reported is not None:
        seq, facts = reported
        keys.append(Keys.reported(stream))
        args += [str(seq), json.dumps({"duration": facts.duration, "file": facts.file_name})]
        args.append(REPORTED_TTL)
    if not _script(connection, "trigger", TRIGGER_SCRIPT)(keys=keys, args=args, client=connection):
        return False
    jobs.SYNC_STREAM.enqueue(connection, stream, queue=queue)
    return True


def repair_coalescing(connection: redis.Redis, node_id: str = DEFAULT_NODE) -> list[str]:
    """Set right what a killed worker leaves behind in the node's trigger
    bookkeeping (the watcher's sweep calls it): a "queued" flag with no job
    on the node's queue (the job was lost with its worker) and a drainer
    count above the sync jobs running (a drainer killed mid-job). Either
    makes triggers enqueue nothing until it expires (QUEUED_TTL; DRAINING_TTL,
    which every live drainer renews), so segments would wait that long.
    Returns what was repaired. Raises redis errors."""
    queue = media_queue(connection, jobs.node_queue(jobs.UPLOADS, node_id))
    repaired = []
    # Set with QUEUED_TTL when a job is enqueued, dropped when it starts: one
    # older than QUEUED_STALE with the queue empty is not a job being taken
    # from the queue right now (milliseconds), but one lost.
    left = connection.ttl(Keys.queued(node_id))
    stale = left >= 0 and QUEUED_TTL - left >= QUEUED_STALE and queue.count == 0
    if stale and connection.delete(Keys.queued(node_id)):
        repaired.append("queued flag without a job")
    running = StartedJobRegistry(queue=queue).count
    args = [running]
    keys = [Keys.draining(node_id)]
    if _script(connection, "repair", REPAIR_SCRIPT)(keys=keys, args=args, client=connection):
        repaired.append(f"drainer count above the {running} sync jobs running")
    return repaired


def start_draining(connection: redis.Redis, node_id: str, stream: str) -> None:
    """A sync job of `node_id` starts: no job waits on its queue any more (a
    trigger from now on may queue the next one), and it counts as a drainer
    of the node's dirty streams; its own stream is marked dirty and taken
    out of the set. Raises redis errors."""
    draining = Keys.draining(node_id)
    with connection.pipeline(transaction=False) as pipe:
        pipe.delete(Keys.queued(node_id)).incr(draining).expire(draining, DRAINING_TTL)
        pipe.set(Keys.dirty(stream), 1).zrem(Keys.dirty_streams(node_id), stream)
        pipe.execute()


def next_dirty_streams(
    connection: redis.Redis, node_id: str, count: int = 1, stop: bool = False
) -> list[str]:
    """The node's next dirty streams for a drainer, up to `count`, longest
    waiting first; none once the set is empty (or with `stop`), and then the
    caller is no longer a drainer. Raises redis errors."""
    keys = [Keys.dirty_streams(node_id), Keys.draining(node_id)]
    args = [DRAINING_TTL, "1" if stop else "0", count]
    streams = _script(connection, "next", NEXT_SCRIPT)(keys=keys, args=args, client=connection)
    return [_text(stream) for stream in streams]


def wait_dirty_streams(
    connection: redis.Redis, node_id: str, seconds: float, count: int = 1, gather: float = 0.0
) -> list[str]:
    """The node's next dirty streams (up to `count`), waiting up to
    `seconds` for the first (the caller stays a drainer: triggers meanwhile
    count on it), then until the first has waited `gather` seconds for
    others to join it; none if none came. Raises redis errors."""
    key = Keys.dirty_streams(node_id)
    popped = connection.bzpopmin(key, timeout=max(seconds, 0.01))
    if popped is None:
        return []
    _, first, added = popped
    if count == 1:
        return [_text(first)]
    time.sleep(min(gather, max(0.0, gather - (time.time() - added))))
    return [_text(first)] + [_text(stream) for stream, _ in connection.zpopmin(key, count - 1)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def requeue_drain(connection: redis.Redis, node_id: str) -> bool:
    """After a drainer stopped with streams left in the set: queue a sync
    job for them unless one waits already. Returns True if one was queued.
    Raises redis errors."""
    left = next(iter(connection.zrange(Keys.dirty_streams(node_id), 0, 0)), None)
    if left is None or not connection.set(Keys.queued(node_id), 1, nx=True, ex=QUEUED_TTL):
        return False
    stream = left.decode() if isinstance(left, bytes) else left
    jobs.SYNC_STREAM.enqueue(connection, stream, queue=jobs.node_queue(jobs.UPLOADS, node_id))
    return True


def files_node(connection: redis.Redis, stream: str) -> str:
    """The media node holding the stream's local files: the one its last
    sync was queued for, else the default node. Raises redis errors."""
    node_id = connection.get(Keys.node(stream))
    return node_id.decode() if isinstance(node_id, bytes) else node_id or DEFAULT_NODE


def request_finalize(
    connection: redis.Redis,
    broadcast_id: int,
    stream: str | None = None,
    pipeline: Pipeline | None = None,
) -> None:
    """Enqueue the replay job of an ended broadcast (idempotent job), on the
    replays queue of the node holding `stream`'s files (it waits for them to
    reach the bucket), on `pipeline` if given. Raises redis errors."""
    node_id = files_node(connection, stream) if stream else DEFAULT_NODE
    queue = jobs.node_queue(jobs.REPLAYS, node_id)
    jobs.FINALIZE_BROADCAST.enqueue(connection, int(broadcast_id), queue=queue, pipeline=pipeline)


def claim_thumbnail(connection: redis.Redis, broadcast_id: int) -> bool:
    """Whether the caller (a sync pass) may cut the broadcast's next
    thumbnail: True at most once every THUMBNAIL_INTERVAL seconds per
    broadcast. Raises redis errors."""
    return bool(connection.set(Keys.thumbnail(broadcast_id), 1, nx=True, ex=THUMBNAIL_INTERVAL))


def request_purge(connection: redis.Redis, stream: str) -> None:
    """Enqueue the purge of a deleted stream's media (idempotent job), on
    the replays queue of the node holding its local files."""
    queue = jobs.node_queue(jobs.REPLAYS, files_node(connection, stream))
    jobs.PURGE_STREAM.enqueue(connection, stream, queue=queue)


def request_move(connection: redis.Redis, stream: str) -> None:
    """Enqueue the move of a stream's objects to the prefix its visibility
    asks for (idempotent job)."""
    jobs.MOVE_STREAM.enqueue(connection, stream)


def request_cdn_invalidation(
    app: Flask, connection: redis.Redis, stream: str, private_too: bool = False
) -> None:
    """With CDN_INVALIDATE on, enqueue the invalidation of the stream's
    public folder (and, `private_too`, its private one) on Cloud CDN
    (`studio.storage.cdn`); without it, nothing."""
    if app.config["CDN_INVALIDATE"]:
        jobs.INVALIDATE_CDN.enqueue(connection, stream, private_too)


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
    reported = ReportedSegment(segment.duration, PurePosixPath(segment.path).name)
    try:
        request_sync(connection, segment.stream, node_id, reported=(segment.seq, reported))
    except redis.RedisError:
        log.warning("could not queue a sync of %s (Redis down)", segment.stream)
        return False
    return True


@dataclass(frozen=True)
class PassFacts:
    """What a sync pass of a stream starts from (`pass_facts`)."""

    reported: dict[int, ReportedSegment]
    # The digest of the live playlist last put in the bucket (None if none).
    playlist_digest: bytes | None
    # Broadcasts whose thumbnail was claimed within THUMBNAIL_INTERVAL.
    thumbnails_claimed: set[int]
    # The window's recorded segments as the last pass left them (`Keys.recorded`;
    # raw: the worker that writes them reads them).
    recorded: dict[bytes, bytes]


class FactsWanted(NamedTuple):
    """What `pass_facts` reads for one stream."""

    stream: str
    reported: bool = True  # the engine's reports (skipped: nothing to upload)
    thumbnails: Iterable[int] = ()  # broadcasts whose thumbnail claim to check


def pass_facts(connection: redis.Redis, wanted: list[FactsWanted]) -> list[PassFacts]:
    """What sync passes of streams start from, in one round trip for all
    (`wanted`, in order): the segments the engine reported and the sync has
    not recorded yet, by sequence number (empty without `reported`), the
    digest of the live playlist last put in the bucket, the recorded
    segments of the engine's window as the last pass noted them, and which
    of the broadcasts `thumbnails` had a thumbnail claimed recently
    (`claim_thumbnail` would refuse). Raises redis errors."""
    asked = [(item, list(item.thumbnails)) for item in wanted]
    with connection.pipeline(transaction=False) as pipe:
        for item, thumbnails in asked:
            if item.reported:
                pipe.hgetall(Keys.reported(item.stream))
            pipe.hget(Keys.playlist(item.stream), "digest")
            pipe.hgetall(Keys.recorded(item.stream))
            for broadcast_id in thumbnails:
                pipe.exists(Keys.thumbnail(broadcast_id))
        replies = iter(pipe.execute())
    facts = []
    for item, thumbnails in asked:
        reported = _parse_reported(next(replies)) if item.reported else {}
        digest, recorded = next(replies), next(replies)
        claims = [next(replies) for _ in thumbnails]
        claimed = {b for b, exists in zip(thumbnails, claims, strict=True) if exists}
        facts.append(PassFacts(reported, digest, claimed, recorded))
    return facts


def _parse_reported(values: dict) -> dict[int, ReportedSegment]:
    reported = {}
    for seq, value in values.items():
        facts = json.loads(value)
        reported[int(seq)] = ReportedSegment(float(facts["duration"]), str(facts["file"]))
    return reported


def forget_reported(connection: redis.Redis | Pipeline, stream: str, seqs: list[int]) -> None:
    """Drop reported segments once recorded (queued on `connection` when it
    is a pipeline). Raises redis errors."""
    if seqs:
        connection.hdel(Keys.reported(stream), *(str(seq) for seq in seqs))


def _broadcast_ended(event: events.BroadcastEnded) -> None:
    """Queue the replay of an ended broadcast. Redis being down is logged;
    the watcher's sweep finalizes ended broadcasts later."""
    try:
        request_finalize(get_redis(), event.broadcast_id, event.stream, pipeline=batch())
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
