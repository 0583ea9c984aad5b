"""The per-stream sync: local HLS directory -> bucket.

One pass (`sync_once`): upload every complete local segment not yet in the
bucket, record it against its broadcast, delete the local file, THEN upload
the live playlist rewritten to the bucket's objects — so the bucket's
playlist never names a missing segment.

Passes of one stream never overlap: a Redis lock serializes them, and a dirty
flag makes sure no trigger is lost (a trigger during a pass marks the stream
dirty again; after its pass the lock holder takes that flag for another pass
or releases the lock, in one step: `locks.finish_pass`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import redis
from flask import Flask

from studio import metrics
from studio.core.segments import UploadedSegment, record_segments
from studio.extensions import db
from studio.media import pipeline
from studio.media.pipeline import Keys
from studio.models import Broadcast, Stream
from studio.redis_client import get_redis
from studio.storage import gcs, layout
from workers.pipeline import continuity, live, local_hls, locks, mpegts, replay, thumbnails
from workers.pipeline.broadcasts import (
    Window,
    broadcast_for,
    streams_and_broadcasts,
    windows,
)
from workers.pipeline.playlists import PlaylistSegment

log = logging.getLogger(__name__)

BATCH = 16
QUIET_AFTER_END = 0.5  # seconds

_pools: dict[int, ThreadPoolExecutor] = {}


@dataclass
class SyncResult:
    uploaded: int = 0
    failed: int = 0
    orphans: int = 0
    playlist_written: bool = False
    broadcasts: set[int] = field(default_factory=set)
    streams: set[str] = field(default_factory=set)  # those that got segments uploaded
    # The stream's recent broadcasts as the latest pass saw them (newest
    # first): who owns what is left on disk, without asking the database again.
    windows: list[Window] = field(default_factory=list)

    def add(self, other: SyncResult) -> None:
        """Fold a later pass into this result."""
        self.uploaded += other.uploaded
        self.failed += other.failed
        self.orphans += other.orphans
        self.playlist_written |= other.playlist_written
        self.broadcasts |= other.broadcasts
        self.streams |= other.streams
        if other.windows:
            self.windows = other.windows

    def as_dict(self) -> dict:
        return {
            "uploaded": self.uploaded,
            "failed": self.failed,
            "orphans": self.orphans,
            "playlist_written": self.playlist_written,
            "broadcasts": sorted(self.broadcasts),
        }


def drain(
    app: Flask,
    connection: redis.Redis,
    streams: list[str],
    node_id: str | None = None,
    synced: set[str] = frozenset(),
) -> SyncResult:
    """A pass over those `streams` that are dirty and nobody else holds,
    together (`sync_group`; one that `synced` already uploaded in this job
    only if it has something new). A stream asked for again during the
    pass goes back to the end of `node_id`'s dirty streams (a drainer's
    next group takes it), or, without `node_id`, gets passes until it is
    clean.

    Taking a lock takes the stream's dirty flag with it, and after the pass
    one step either takes or requeues a flag set meanwhile, or releases the
    lock (`locks.finish_pass`): for the whole group, two Redis round trips
    around a pass. The result's `streams` are those that got uploads."""
    total = SyncResult()
    # Not taken: the stream is clean, or the holder's finish_pass sees the flag.
    held = locks.take_dirty(connection, streams)
    try:
        while held:
            due = {
                lock.stream: lock
                for lock in held
                if lock.stream not in synced or not nothing_new(app, connection, lock.stream)
            }
            for name, result in (sync_group(app, due) if due else {}).items():
                total.add(result)
                if result.uploaded:
                    total.streams.add(name)
            synced = synced | total.streams
            finished = list(zip(held, locks.finish_pass(held, node_id), strict=True))
            lost = [lock.stream for lock, f in finished if f is locks.Finished.LOST]
            held = [lock for lock, f in finished if f is locks.Finished.DIRTY]
            held += locks.take_dirty(connection, lost) if lost and node_id is None else []
    except BaseException:
        for lock in held:
            if lock.local.token is not None:
                locks.release(lock)
        raise
    return total


def nothing_new(app: Flask, connection: redis.Redis, stream: str) -> bool:
    """Whether a pass right after one that uploaded would find nothing to
    do: no segment on disk, the local playlist already in the bucket, nothing
    left behind for `tidy_local`. (A trigger that came during a pass, for a
    segment that pass already took, finds it done.) Decided from
    the directory and one Redis read, without the database."""
    hls_dir = app.config["HLS_DIR"]
    if local_hls.local_segments(hls_dir, stream):
        return False
    playlist = local_hls.read_playlist(hls_dir, stream)
    if playlist is None:
        return False
    now = time.time()
    age = local_hls.leftover_age(
        float(app.config["HLS_FRAGMENT"]), app.config["HLS_LEFTOVER_SECONDS"]
    )
    if now - playlist.mtime >= age:
        return False  # maybe the playlist of an ended broadcast, to tidy
    if any(now - temp.mtime >= age for temp in local_hls.temp_segments(hls_dir, stream)):
        return False
    synced = connection.hget(Keys.playlist(stream), "mtime")
    return synced is not None and float(synced) + 1e-3 >= playlist.mtime


def sync_now(app: Flask, connection: redis.Redis, stream: str, wait: float = 60) -> SyncResult:
    """One pass that starts after this call (waits for the lock), then drain."""
    lock = connection.lock(Keys.lock(stream), timeout=locks.LOCK_TTL, blocking_timeout=wait)
    if not lock.acquire():
        raise TimeoutError(f"lock of {stream} still held after {wait}s")
    locks.acquired(lock)
    try:
        result = sync_once(app, stream, lock)
    finally:
        locks.release(lock)
    result.add(drain(app, connection, [stream]))
    return result


def sync_once(app: Flask, stream: str, lock=None) -> SyncResult:
    """One pass over the stream's local files (caller holds the lock)."""
    return sync_group(app, {stream: lock})[stream]


def sync_group(app: Flask, held: dict[str, object]) -> dict[str, SyncResult]:
    """One pass over the local files of each stream of `held` ({stream: its
    lock, held by the caller}), together: one query reads their rows, one
    Redis round trip their facts, each batch of uploads is recorded in one
    commit, and what the passes leave in Redis goes in one round trip once
    their playlists are written. Returns each stream's result."""
    config = app.config
    # Rows kept from an earlier pass of this job are read afresh by the query.
    db.session.expire_all()
    rows = streams_and_broadcasts(held)
    connection = get_redis(app)
    storage = gcs.get_storage(config)
    pool = _pool(int(config.get("UPLOAD_THREADS", 8)))
    results = {name: SyncResult() for name in held}
    # What the passes leave in Redis goes in one round trip once the
    # playlists are written: where their segments started (`continuity`),
    # the reported facts of the recorded segments (a pass that fails before
    # that finds them again, unused) and the playlists' digests.
    with connection.pipeline(transaction=False) as written:
        passes = [
            this_pass
            for name, lock in held.items()
            if (this_pass := _open(app, name, lock, rows.get(name), written, results[name]))
        ]
        asked = [
            pipeline.FactsWanted(p.name, bool(p.complete), thumbnails.wanted(p.broadcasts))
            for p in passes
        ]
        for this_pass, wants, facts in zip(
            passes, asked, pipeline.pass_facts(connection, asked), strict=True
        ):
            this_pass.facts = facts
            this_pass.wanted = set(wants.thumbnails) - facts.thumbnails_claimed
            _prepare(this_pass, connection)
        _upload_segments(passes, storage, pool, connection)
        _write_playlists(app, passes, storage, pool)
        if len(written):
            written.execute()
    for this_pass in passes:
        try:
            _finish(app, this_pass)
        except Exception:
            # Its segments and playlist are in the bucket: one stream's
            # trouble here (a replay, a thumbnail, a leftover file) is not
            # its group's, and its next pass tries again.
            db.session.rollback()
            log.exception("finishing the pass of stream %s failed", this_pass.name)
    return results


def _finish(app: Flask, this_pass: _StreamPass) -> None:
    """What follows a stream's uploads: a late segment's replay rewritten,
    its thumbnails recorded, what the engine left behind deleted."""
    _refresh_replays(app, this_pass.broadcasts, this_pass.result)
    if this_pass.writing:
        thumbnails.finish_writing(this_pass.stream, this_pass.writing)
    tidy_local(app, this_pass.name, this_pass.publishing, this_pass.result)


def tidy_local(app: Flask, stream: str, publishing: bool, result: SyncResult) -> int:
    """Delete what the engine left behind and nobody will upload: `.ts.tmp`
    files untouched for `leftover_age` (a fragment of an engine killed while
    writing it), and the playlist of an ended broadcast once every segment
    and the playlist itself are in the bucket. Returns the files deleted."""
    hls_dir = app.config["HLS_DIR"]
    now = time.time()
    age = local_hls.leftover_age(
        float(app.config["HLS_FRAGMENT"]), app.config["HLS_LEFTOVER_SECONDS"]
    )
    removed = 0
    for temp in local_hls.temp_segments(hls_dir, stream):
        if now - temp.mtime >= age:
            temp.path.unlink(missing_ok=True)
            removed += 1
            log.info("removed abandoned fragment %s", temp.path.name)
    if publishing or result.failed:
        return removed
    playlist = local_hls.read_playlist(hls_dir, stream)
    if playlist is None or now - playlist.mtime < age:
        return removed
    if local_hls.local_segments(hls_dir, stream) or local_hls.temp_segments(hls_dir, stream):
        return removed  # not everything is in the bucket yet
    synced = get_redis(app).hget(Keys.playlist(stream), "mtime")
    if synced is None or float(synced) + 1e-3 < playlist.mtime:
        return removed  # the bucket has not got this playlist's last version
    local_hls.playlist_path(hls_dir, stream).unlink(missing_ok=True)
    log.info("removed the local playlist of ended stream %s", stream)
    return removed + 1


@dataclass
class _Pending:
    segment: local_hls.LocalSegment
    broadcast: Broadcast
    broadcast_id: int  # read before the pass commits (the row expires then)
    duration: float
    discontinuity: bool
    object_name: str

    @property
    def started_at(self) -> datetime:
        """Wall clock of the segment's first frame: the engine closes the
        file when the next keyframe arrives, so its last write is the end of
        the segment as ingested; minus its length is the start. Taken per
        segment (not the broadcast start plus a running sum) so that a
        stall in the ingest shows in the playlist instead of being summed
        away, and so that a segment lost on the way does not shift the rest."""
        return datetime.fromtimestamp(self.segment.mtime - self.duration, tz=UTC)


@dataclass
class _StreamPass:
    """One stream's part of a group pass: its lock, row and broadcasts (as
    read at the start), its local files, the Redis pipeline `written` of
    what the passes leave there, and the result it adds to; then what it
    found to upload and what it uploaded."""

    name: str
    lock: object
    stream: Stream
    broadcasts: list[Broadcast]
    publishing: bool
    playlist: local_hls.LocalPlaylist | None
    on_disk: list[local_hls.LocalSegment]
    complete: list[local_hls.LocalSegment]
    written: redis.client.Pipeline
    result: SyncResult
    facts: pipeline.PassFacts | None = None
    wanted: set[int] = field(default_factory=set)  # broadcasts a thumbnail may be cut of
    pending: list[_Pending] = field(default_factory=list)
    frames: list[thumbnails.Frame] = field(default_factory=list)
    uploaded: dict[int, PlaylistSegment] = field(default_factory=dict)
    writing: list = field(default_factory=list)
    stopped: bool = False  # no more uploads this pass (a failure, or the lock lost)


def _open(app: Flask, name: str, lock, row, written, result: SyncResult) -> _StreamPass | None:
    """The stream's part of a group pass, from its row and broadcasts (`row`,
    None if the stream is unknown: then its files are left alone, and None
    is returned) and its local directory."""
    hls_dir = app.config["HLS_DIR"]
    stream, broadcasts = row or (None, [])
    result.windows = windows(broadcasts)
    playlist = local_hls.read_playlist(hls_dir, name)
    on_disk = local_hls.local_segments(hls_dir, name)
    if stream is None:
        if on_disk:
            result.orphans = len(on_disk)
            log.warning("%d local segments of unknown stream %s left alone", len(on_disk), name)
        if playlist is not None:  # seen: the sweep need not bring it back
            written.hset(Keys.playlist(name), "mtime", playlist.mtime)
        return None
    publishing = any(b.ended_at is None for b in broadcasts)
    # Engines close their files before they report the unpublish (nginx-rtmp
    # closes the fragment, then notifies; SRS sends the last on_hls first), so
    # once nobody publishes a file untouched for half a second is final.
    complete = local_hls.complete_segments(
        on_disk, playlist, publishing, time.time(), QUIET_AFTER_END
    )
    return _StreamPass(
        name, lock, stream, broadcasts, publishing, playlist, on_disk, complete, written, result
    )


def _prepare(this_pass: _StreamPass, connection: redis.Redis) -> None:
    """Decide what of the complete segments to upload (`this_pass.pending`).

    A segment's length is the one the engine reported, else the playlist's,
    else measured from its timestamps. The engine's discontinuity flag is
    kept only where the timestamps jump, and a broadcast's first segment
    without audio samples is left out (`continuity`; where the segments
    started is queued on `this_pass.written`)."""
    stream, broadcasts, result = this_pass.stream, this_pass.broadcasts, this_pass.result
    listed = this_pass.playlist.by_number() if this_pass.playlist else {}
    reported = this_pass.facts.reported
    pending = this_pass.pending
    # Where each segment of this pass started: the next one compares against it.
    starts: dict[int, tuple[int, float]] = {}
    for segment in this_pass.complete:
        broadcast = broadcast_for(broadcasts, segment.mtime)
        if broadcast is None:
            result.orphans += 1
            log.warning(
                "segment %s matches no broadcast of %s; left on disk",
                segment.path.name,
                stream.public_id,
            )
            continue
        entry = listed.get(segment.number)
        facts = reported.get(segment.number)
        on_disk = this_pass.on_disk
        try:
            data = segment.path.read_bytes()  # read once for what follows
            if facts is not None and facts.file_name == segment.path.name:
                duration = facts.duration
            else:
                duration = entry.duration if entry else _duration_from_pts(data, segment, on_disk)
            started = any(item.broadcast_id == broadcast.id for item in pending)
            leave_out = continuity.silent_start(
                segment, data, on_disk, broadcast.id, this_pass.publishing, earlier_in_pass=started
            )
        except FileNotFoundError:
            continue  # taken care of by an overlapping pass
        first = mpegts.first_pts(data)
        del data  # a backlog's files are read again one batch at a time to upload
        if leave_out is None:
            continue  # decided once the next segment is complete
        if leave_out:
            segment.path.unlink(missing_ok=True)
            continue
        flagged = continuity.discontinuity(
            connection,
            stream.public_id,
            segment.number,
            first,
            bool(entry and entry.discontinuity),
            starts,
        )
        object_name = layout.segment(stream.public_id, broadcast.id, segment.number, stream.private)
        pending.append(_Pending(segment, broadcast, broadcast.id, duration, flagged, object_name))
        if first is not None:
            starts[segment.number] = (first, duration)
    # Written with the pass's other notes: the next pass compares against them.
    continuity.remember(this_pass.written, stream.public_id, starts)
    if len(pending) > 1:
        # The stream is behind: its segments first, a thumbnail once it keeps up.
        this_pass.wanted = set()


def _upload_segments(
    passes: list[_StreamPass], storage: gcs.Storage, pool: ThreadPoolExecutor, connection
) -> None:
    """Upload the passes' pending segments in parallel, up to BATCH of each
    stream at a time; record each batch (one commit), read the thumbnails'
    segments from the local files (`thumbnails.cut_from_pass`), delete the
    files. A stream whose lock expired stops; a failed upload stops all (the
    bucket is probably unreachable: the rest waits on disk)."""
    for start in range(0, max((len(p.pending) for p in passes), default=0), BATCH):
        batch = []
        for this_pass in passes:
            chunk = this_pass.pending[start : start + BATCH]
            if not chunk or this_pass.stopped:
                continue
            if start and this_pass.lock is not None and not locks.still_ours(this_pass.lock):
                this_pass.stopped = True  # another pass owns the stream now
                continue
            batch += [(this_pass, item) for item in chunk]
        if not batch:
            return
        done, failed = _upload_all(storage, pool, batch)
        if done:
            _record([item for _, item in done])
        for this_pass in passes:
            mine = [item for owner, item in done if owner is this_pass]
            if mine:
                _uploaded(this_pass, mine, connection)
            this_pass.stopped |= failed


def _uploaded(this_pass: _StreamPass, done: list[_Pending], connection) -> None:
    """After a batch of the stream's segments was recorded: cut the
    thumbnails' frames, delete the files, add them to the pass's result."""
    cut = thumbnails.cut_from_pass(
        connection,
        this_pass.wanted,
        [(item.broadcast_id, item.segment.number, item.segment.path) for item in done],
    )
    this_pass.wanted -= {frame.broadcast_id for frame in cut}
    this_pass.frames.extend(cut)
    _forget_local(done)
    result = this_pass.result
    result.uploaded += len(done)
    result.broadcasts |= {item.broadcast_id for item in done}
    this_pass.uploaded.update(
        (
            item.segment.number,
            PlaylistSegment(
                item.segment.number,
                item.duration,
                item.broadcast_id,
                item.discontinuity,
                item.started_at,
            ),
        )
        for item in done
    )


def _write_playlists(app: Flask, passes: list[_StreamPass], storage, pool) -> None:
    """Start the passes' thumbnails, then write their live playlists, in
    parallel, each naming only segments in the bucket (`live.in_bucket`)."""
    uploads: list[tuple[_StreamPass, live.PlaylistUpload]] = []
    for this_pass in passes:
        uploaded, facts, written = this_pass.uploaded, this_pass.facts, this_pass.written
        reported = [n for n in uploaded if n in facts.reported]
        pipeline.forget_reported(written, this_pass.name, reported)
        # Thumbnails are cut and uploaded on the pool while the playlist is written.
        this_pass.writing = thumbnails.start_writing(
            storage, pool, this_pass.stream, this_pass.broadcasts, this_pass.frames
        )
        playlist = this_pass.playlist
        if playlist is None:
            continue
        available = live.in_bucket(
            written,
            this_pass.name,
            this_pass.broadcasts,
            [entry.number for entry in playlist.entries],
            uploaded,
            {segment.number for segment in this_pass.on_disk},
            facts.recorded,
        )
        upload = live.live_playlist(
            app,
            this_pass.stream,
            this_pass.broadcasts,
            playlist,
            available,
            facts.playlist_digest,
            written,
        )
        lock = this_pass.lock
        if upload is not None and (lock is None or locks.still_ours(lock)):
            uploads.append((this_pass, upload))  # else a newer pass owns the stream
    if not uploads:
        return
    started = time.time()
    calls = [partial(storage.upload_live_playlist, u.object_name, u.text) for _, u in uploads]
    for (this_pass, upload), future in zip(uploads, _in_parallel(pool, calls), strict=True):
        error = future.exception()
        if error is not None and not isinstance(error, gcs.StorageError):
            raise error
        live.playlist_uploaded(upload, error, this_pass.result, this_pass.written, started)


def _forget_local(done: list[_Pending]) -> None:
    """Delete local files (their rows are committed) and record the lag."""
    now = time.time()
    for item in done:
        item.segment.path.unlink(missing_ok=True)
        metrics.UPLOAD_LAG.labels("segment").observe(max(0.0, now - item.segment.mtime))
        metrics.UPLOADED_BYTES.labels("segment").inc(item.segment.size)


def _upload_all(storage, pool, batch: list[tuple[_StreamPass, _Pending]]):
    """Upload in parallel (`_in_parallel`): (uploaded, failed?). After the
    first failure the rest are not tried (the bucket is probably unreachable)."""
    calls = [partial(storage.upload_segment, i.object_name, i.segment.path) for _, i in batch]
    done = []
    failed = False
    for (owner, item), future in zip(batch, _in_parallel(pool, calls), strict=True):
        if failed and future.cancel():
            continue
        try:
            future.result()
        except FileNotFoundError:
            log.warning("segment %s vanished before upload", item.segment.path)
            continue
        except gcs.StorageError as exc:
            failed = True
            owner.result.failed += 1
            metrics.UPLOAD_FAILURES.labels("segment").inc()
            log.error(
                "segment %s not uploaded, kept on disk for a retry: %s", item.segment.path.name, exc
            )
            continue
        done.append((owner, item))
    return done, failed


def _in_parallel(pool: ThreadPoolExecutor, calls: list[Callable[[], object]]) -> list[Future]:
    """Each call's outcome as a Future: the first run in this thread, the
    others meanwhile on the pool (handing an upload to another thread and
    waiting for it costs more CPU than its request, and a stream that keeps
    up has one segment and one playlist a pass)."""
    futures = [pool.submit(call) for call in calls[1:]]
    here: Future = Future()
    try:
        here.set_result(calls[0]())
    except Exception as exc:
        here.set_exception(exc)
    return [here, *futures]


def _record(done: list[_Pending]) -> None:
    """Record the segments (see `record_segments`) and commit before any
    local file is deleted. The commit keeps the pass's rows as it read them
    at its start (its view of the stream), instead of loading each again
    for the playlist and the replays; the next pass reads them afresh."""
    uploaded = [
        UploadedSegment(
            item.broadcast_id,
            item.segment.number,
            item.duration,
            item.object_name,
            item.segment.size,
            item.discontinuity,
            item.started_at,
        )
        for item in done
    ]
    record_segments(db.session, uploaded)
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def _duration_from_pts(data: bytes, segment: local_hls.LocalSegment, on_disk) -> float:
    """Duration of a segment (`data`: its bytes) no longer in the engine's
    playlist window."""
    this = mpegts.pts_range(data)
    following = next((s for s in on_disk if s.number == segment.number + 1), None)
    after = mpegts.read_range(following.path) if following else None
    if this is None:
        return 0.0
    return mpegts.duration(this, after)


def _pool(threads: int) -> ThreadPoolExecutor:
    pool = _pools.get(os.getpid())
    if pool is None:
        pool = ThreadPoolExecutor(threads, thread_name_prefix="upload")
        _pools[os.getpid()] = pool
    return pool


def _refresh_replays(app: Flask, broadcasts: list[Broadcast], result: SyncResult) -> None:
    """A segment of an already finalized broadcast arrived late: rewrite its replay."""
    for broadcast in broadcasts:
        if broadcast.id in result.broadcasts and broadcast.replay_ready_at is not None:
            replay.write_replay(app, broadcast)
