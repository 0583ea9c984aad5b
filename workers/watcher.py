"""Watch the local HLS directory and trigger syncs (nginx-rtmp has no on_hls).

`python -m workers.watcher`: inotify tells us when an engine rewrites a
playlist (a segment closed), unless the engine announces each segment itself
(SRS's on_hls queues the sync); a sweep every few seconds re-triggers any
stream with files left behind (a lost trigger or callback, Redis or the
bucket having been down) and queues the replay of ended broadcasts that
never got one. Triggers are idempotent, so doubled ones cost one cheap job
at most.

On a media node (STUDIO_NODE_ID, STUDIO_HLS_DIR the node's own directory) the
syncs go to that node's queue, for the workers beside the files.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from datetime import timedelta

import redis
from flask import Flask
from inotify_simple import INotify
from inotify_simple import flags as iflags
from sqlalchemy import exists, select

from studio.extensions import db
from studio.logging_setup import configure_process_logging
from studio.media import engines, jobs, pipeline
from studio.models import Broadcast, Segment, Stream, utcnow
from studio.redis_client import get_redis
from workers.context import process_app
from workers.pipeline import local_hls

log = logging.getLogger("workers.watcher")

FINALIZE_SWEEP_INTERVAL = 30.0
# Seconds after its end when a broadcast's replay, still not written by the
# node holding its files (whose finalize retries span about 8 minutes), is
# written by the shared workers instead.
ORPHANED_REPLAY = 600
WATCH_FLAGS = iflags.CLOSE_WRITE | iflags.MOVED_TO
TIDY_KEY = "studio:hls:tidy:{}"


def _oldest(*mtimes: float | None) -> float:
    """The oldest of the given modification times (infinity for none)."""
    return min((m for m in mtimes if m is not None), default=float("inf"))


class Watcher:
    """inotify on `{HLS_DIR}/live` plus the periodic sweep."""

    def __init__(self, app: Flask):
        self.app = app
        self.hls_dir = app.config["HLS_DIR"]
        self.node_id = jobs.check_node_id(app.config.get("NODE_ID") or jobs.DEFAULT_NODE)
        self.fragment = float(app.config["HLS_FRAGMENT"])
        self.sweep_interval = float(app.config.get("SWEEP_INTERVAL", 3.0))
        self.stopping = False
        self.inotify = INotify()
        directory = local_hls.live_dir(self.hls_dir)
        directory.mkdir(parents=True, exist_ok=True)
        # An engine that announces its segments has already queued each sync.
        self.on_write = not engines.current(app).announces_segments
        if self.on_write:
            self.inotify.add_watch(str(directory), WATCH_FLAGS)

    def run(self) -> None:
        next_sweep = next_finalize = 0.0
        while not self.stopping:
            streams = set()
            for event in self.inotify.read(timeout=int(self.sweep_interval * 1000 / 3)):
                if event.name.endswith(".m3u8"):
                    streams.add(event.name[: -len(".m3u8")])
            for stream in streams:
                self.trigger(stream)
            now = time.monotonic()
            if now >= next_sweep:
                self.sweep()
                next_sweep = now + self.sweep_interval
            if now >= next_finalize:
                self.sweep_replays()
                next_finalize = now + FINALIZE_SWEEP_INTERVAL

    def trigger(self, stream: str) -> None:
        if not local_hls.STREAM_NAME.match(stream):
            return
        try:
            pipeline.request_sync(get_redis(self.app), stream, self.node_id)
        except redis.RedisError as exc:
            # The files wait on disk; the sweep retries once Redis is back.
            log.warning("could not queue a sync of %s: %s", stream, exc)

    def sweep(self) -> int:
        """Trigger every stream with old local segments or an unsynced playlist."""
        on_disk = local_hls.streams_on_disk(self.hls_dir)
        if not on_disk:
            return 0
        now = time.time()
        stale = now - (2 * self.fragment + 2)
        names = sorted(on_disk)
        try:
            connection = get_redis(self.app)
            for what in pipeline.repair_coalescing(connection, self.node_id):
                log.warning("sweep: repaired the sync triggers of node %s: %s", self.node_id, what)
            with connection.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hget(pipeline.Keys.playlist(name), "mtime")
                synced = pipe.execute()
        except redis.RedisError as exc:
            log.warning("sweep: Redis unavailable: %s", exc)
            return 0
        triggered = 0
        leftover_age = local_hls.leftover_age(
            self.fragment, self.app.config["HLS_LEFTOVER_SECONDS"]
        )
        for name, synced_mtime in zip(names, synced, strict=True):
            info = on_disk[name]
            old_segment = info["oldest_segment_mtime"] is not None and (
                info["oldest_segment_mtime"] < stale
            )
            playlist = info["playlist_mtime"]
            unsynced = (
                playlist is not None
                and playlist < now - 1
                and (synced_mtime is None or playlist > float(synced_mtime) + 1e-3)
            )
            left_behind = _oldest(info["oldest_temp_mtime"], playlist) < now - leftover_age
            tidy = left_behind and self._tidy_due(connection, name, leftover_age)
            if old_segment or unsynced or tidy:
                self.trigger(name)
                triggered += 1
        return triggered

    def _tidy_due(self, connection: redis.Redis, stream: str, every: float) -> bool:
        """One tidy-up sync per `every` seconds for a stream whose playlist or
        `.ts.tmp` stays behind (kept while its broadcast is still open)."""
        try:
            return bool(connection.set(TIDY_KEY.format(stream), 1, nx=True, ex=int(every)))
        except redis.RedisError:
            return False

    def sweep_replays(self) -> int:
        """Queue the replay of ended broadcasts with segments but no replay,
        each on the node holding its stream's files (`pipeline.
        request_finalize`); one still without a replay ORPHANED_REPLAY
        seconds after its end (that node is gone, or its job gave up) on the
        shared replays queue, from what the bucket has (a node coming back
        rewrites it with the rest)."""
        now = utcnow()
        query = (
            select(Broadcast.id, Stream.public_id, Broadcast.ended_at)
            .join(Stream, Stream.id == Broadcast.stream_id)
            .where(
                Broadcast.ended_at < now - timedelta(seconds=60),
                Broadcast.ended_at > now - timedelta(days=1),
                Broadcast.replay_ready_at.is_(None),
                exists().where(Segment.broadcast_id == Broadcast.id),
            )
            .limit(100)
        )
        try:
            with self.app.app_context():
                ids = list(db.session.execute(query))
                db.session.remove()
            connection = get_redis(self.app)
            orphaned = now - timedelta(seconds=ORPHANED_REPLAY)
            for broadcast_id, stream, ended_at in ids:
                if connection.set(pipeline.Keys.finalize_queued(broadcast_id), 1, nx=True, ex=300):
                    on_node = stream if ended_at > orphaned else None
                    pipeline.request_finalize(connection, broadcast_id, on_node)
        except Exception as exc:  # the database or Redis being down must not stop the watcher
            log.warning("replay sweep failed: %s", exc)
            return 0
        return len(ids)

    def stop(self, *_args) -> None:
        self.stopping = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Watch a media node's HLS directory.")
    parser.add_argument(
        "--node",
        help="the media node served (default: STUDIO_NODE_ID); on the command line, so "
        "that an operator can tell each node's watcher",
    )
    node = parser.parse_args(argv).node
    if node is not None:
        own = os.environ.get("STUDIO_NODE_ID")
        if own and own != node:
            parser.error(f"--node {node!r} differs from STUDIO_NODE_ID {own!r}")
        try:
            os.environ["STUDIO_NODE_ID"] = jobs.check_node_id(node)
        except ValueError as exc:
            parser.error(str(exc))
    configure_process_logging(os.environ.get("STUDIO_LOG_LEVEL", "INFO"))
    watcher = Watcher(process_app())
    signal.signal(signal.SIGTERM, watcher.stop)
    signal.signal(signal.SIGINT, watcher.stop)
    how = "on every write and" if watcher.on_write else "(the engine announces segments)"
    log.info(
        "watching %s %s every %gs for node %s",
        local_hls.live_dir(watcher.hls_dir),
        how,
        watcher.sweep_interval,
        watcher.node_id,
    )
    watcher.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
