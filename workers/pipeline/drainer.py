"""A sync job drains its media node's dirty streams.

Triggers add a stream to its node's set of dirty streams (see
`studio.media.pipeline.request_sync`) and queue a sync job only when no job
waits and the running drainers are fewer than the set's streams. A job syncs
the stream it was queued for, then takes the set's streams one by one, each
under its own lock (`sync.drain`), waiting up to DRAIN_WAIT_SECONDS for
the next one when the set is empty, until nothing came or DRAIN_SECONDS
have passed; with streams left it queues the next job. Leaving the set
empty and no longer counting as a drainer is one atomic step, so a trigger
is never left without a job to take it.
"""

from __future__ import annotations

import time

import redis
from flask import Flask

from studio.media import pipeline
from studio.media.pipeline import Keys
from workers.pipeline import sync


def sync_requested(app: Flask, stream: str, node_id: str) -> sync.SyncResult:
    """Sync `stream` until it is clean, then the other dirty streams of
    `node_id` for up to DRAIN_SECONDS (the body of the
    `workers.jobs.sync_stream` job). Raises what a pass raises (RQ retries
    the job); a stream taken from the set whose pass failed is put back."""
    connection = sync.get_redis(app)
    pipeline.start_draining(connection, node_id, stream)
    total = sync.SyncResult()
    deadline = time.monotonic() + pipeline.DRAIN_SECONDS
    current: str | None = stream
    try:
        while current is not None:
            total.add(sync.drain(app, connection, current))
            current = None
            left = deadline - time.monotonic()
            if left > 0:
                wait = min(left, pipeline.DRAIN_WAIT_SECONDS)
                current = pipeline.wait_dirty_stream(connection, node_id, wait)
                if current is not None:
                    continue
            # Nothing came (or time is up): take what a trigger added just
            # now, or leave, in one step.
            out_of_time = time.monotonic() >= deadline
            current = pipeline.next_dirty_stream(connection, node_id, stop=out_of_time)
            if out_of_time:
                pipeline.requeue_drain(connection, node_id)
    except Exception:
        _give_back(connection, node_id, current)
        raise
    return total


def _give_back(connection: redis.Redis, node_id: str, stream: str | None) -> None:
    """A pass failed: put its stream back in the set (its job's retry, or the
    next trigger's job, takes it) and stop counting as a drainer."""
    try:
        if stream is not None:
            with connection.pipeline(transaction=False) as pipe:
                pipe.set(Keys.dirty(stream), 1)
                pipe.zadd(Keys.dirty_streams(node_id), {stream: time.time()}, nx=True)
                pipe.execute()
        pipeline.next_dirty_stream(connection, node_id, stop=True)
    except redis.RedisError:
        pass  # the counter expires after DRAINING_TTL; the sweep re-triggers
