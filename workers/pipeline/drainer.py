"""A sync job drains its media node's dirty streams.

Triggers add a stream to its node's set of dirty streams (see
`studio.media.pipeline.request_sync`) and queue a sync job only when no job
waits and the running drainers cannot take the whole set (each takes
DRAIN_GROUP streams at a time). A job syncs the stream it was queued for,
then takes the set's streams up to DRAIN_GROUP at a time, each under its
own lock, their passes together (`sync.drain`: one query, one commit per
batch of uploads, one Redis round trip for the group's facts and one for
its notes). With the set empty it waits up to DRAIN_WAIT_SECONDS for the
next stream, then (on a busy node: `_gather`) DRAIN_GATHER_FRAGMENTS of a
fragment for others to join it, until nothing came or DRAIN_SECONDS have
passed; with streams left it queues the next job. Leaving the set empty and
no longer counting as a drainer is one atomic step, so a trigger is never
left without a job to take it.
"""

from __future__ import annotations

import time

import redis
from flask import Flask

from studio.media import pipeline
from studio.media.pipeline import Keys
from workers.pipeline import sync


def sync_requested(app: Flask, stream: str, node_id: str) -> sync.SyncResult:
    """Sync `stream`, then the dirty streams of `node_id` (its own again if
    it was asked for during its pass) for up to DRAIN_SECONDS (the body of
    the `workers.jobs.sync_stream` job). Raises what a pass raises (RQ retries
    the job); streams taken from the set whose pass failed are put back."""
    connection = sync.get_redis(app)
    pipeline.start_draining(connection, node_id, stream)
    total = sync.SyncResult()
    fragment = float(app.config["HLS_FRAGMENT"])
    began = time.monotonic()
    deadline = began + pipeline.DRAIN_SECONDS
    current = [stream]
    taken = 0
    try:
        while current:
            total.add(sync.drain(app, connection, current, node_id, total.streams))
            taken += len(current)
            current = []
            left = deadline - time.monotonic()
            if left > 0:
                wait = min(left, pipeline.DRAIN_WAIT_SECONDS)
                gather = _gather(taken, time.monotonic() - began, fragment)
                current = pipeline.wait_dirty_streams(
                    connection, node_id, wait, pipeline.DRAIN_GROUP, gather
                )
                if current:
                    continue
            # Nothing came (or time is up): take what a trigger added just
            # now, or leave, in one step.
            out_of_time = time.monotonic() >= deadline
            current = pipeline.next_dirty_streams(
                connection, node_id, pipeline.DRAIN_GROUP, stop=out_of_time
            )
            if out_of_time:
                pipeline.requeue_drain(connection, node_id)
    except Exception:
        _give_back(connection, node_id, current)
        raise
    return total


# The shortest time a drainer's rate of streams is measured over.
RATE_SECONDS = 1.0


def _gather(taken: int, elapsed: float, fragment: float) -> float:
    """How long a first stream waits for others to join its group: the
    gather time (DRAIN_GATHER_FRAGMENTS of a `fragment`) if, at the rate
    streams came so far (`taken` in `elapsed` seconds), another one is due
    within it; else none (a quiet node keeps its lowest latency)."""
    gather = pipeline.DRAIN_GATHER_FRAGMENTS * fragment
    rate = taken / max(elapsed, RATE_SECONDS)
    return gather if rate * gather >= 1 else 0.0


def _give_back(connection: redis.Redis, node_id: str, streams: list[str]) -> None:
    """A pass failed: put its streams back in the set (its job's retry, or
    the next trigger's job, takes them) and stop counting as a drainer."""
    try:
        if streams:
            with connection.pipeline(transaction=False) as pipe:
                for stream in streams:
                    pipe.set(Keys.dirty(stream), 1)
                pipe.zadd(Keys.dirty_streams(node_id), dict.fromkeys(streams, time.time()), nx=True)
                pipe.execute()
        pipeline.next_dirty_streams(connection, node_id, stop=True)
    except redis.RedisError:
        pass  # the counter expires after DRAINING_TTL; the sweep re-triggers
