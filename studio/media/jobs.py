"""The queue boundary: every RQ job of the upload pipeline, declared once.

Each `JobSpec` below is the one place a job's queue, timeout, retries and
result lifetimes are set. The web process enqueues through it (by the job's
dotted name, with RQ's JSON serializer) and never imports the worker code;
`workers/jobs.py` implements each job and binds it to its spec with
`@SPEC.implements`, which checks that the names agree.
(After Redash's `job` decorator, split so that the import graph points one
way: workers depend on studio, never the reverse.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from studio.config import NODE_ID_PATTERN

# Workers take jobs from their queues in this order: replays wait behind live
# segments.
UPLOADS = "uploads"
REPLAYS = "replays"
# Webhook deliveries wait on other people's servers (up to
# STUDIO_WEBHOOK_TIMEOUT each): a queue of their own, taken last.
WEBHOOKS = "webhooks"
QUEUES = (UPLOADS, REPLAYS, WEBHOOKS)

# Media nodes: segment work for node X is done by X's own workers, beside the
# HLS directory its engine writes (segments never cross machines before the
# bucket). The `default` node (one machine, STUDIO_MEDIA_NODES empty) keeps
# the queues above.
DEFAULT_NODE = "default"
NODE_ID = re.compile(NODE_ID_PATTERN)
# Today's queue -> the name of node X's own (`segments.X`, `replays.X`).
NODE_QUEUE_KINDS = {UPLOADS: "segments", REPLAYS: "replays"}


F = TypeVar("F", bound=Callable[..., Any])


def check_node_id(node_id: str) -> str:
    """`node_id` if it is a media node's id (1-32 of `a-z 0-9 -`); raises
    ValueError naming it otherwise."""
    if not isinstance(node_id, str) or not NODE_ID.fullmatch(node_id):
        raise ValueError(f"not a media node id (1-32 of a-z, 0-9, -): {node_id!r}")
    return node_id


def node_queue(kind: str, node_id: str = DEFAULT_NODE) -> str:
    """The queue of node `node_id` that takes the work of `kind` (UPLOADS:
    live segments, `segments.<id>`; REPLAYS: replays and purges, which read
    the node's disk, `replays.<id>`); `kind` itself for the default node.
    Raises ValueError for a bad node id or a kind with no node queue."""
    if kind not in NODE_QUEUE_KINDS:
        raise ValueError(f"{kind!r} has no queue per media node")
    if check_node_id(node_id) == DEFAULT_NODE:
        return kind
    return f"{NODE_QUEUE_KINDS[kind]}.{node_id}"


def queue_node(queue: str) -> str:
    """The media node whose segment work `queue` takes (the inverse of
    `node_queue` for UPLOADS); the default node for any other queue."""
    prefix = NODE_QUEUE_KINDS[UPLOADS] + "."
    if queue.startswith(prefix) and NODE_ID.fullmatch(queue.removeprefix(prefix)):
        return queue.removeprefix(prefix)
    return DEFAULT_NODE


def node_queues(node_id: str = DEFAULT_NODE) -> tuple[str, ...]:
    """The queues the upload workers of `node_id` listen on, in order: live
    segments first. The default node's workers also take the shared queues
    (today's single machine); another node's take their own and nothing else."""
    if check_node_id(node_id) == DEFAULT_NODE:
        return QUEUES
    return tuple(node_queue(kind, node_id) for kind in NODE_QUEUE_KINDS)


@lru_cache(maxsize=64)
def _queue(name: str, connection: redis.Redis) -> Queue:
    """The RQ queue `name` on `connection`, made once (making one costs more
    CPU than the enqueue's own writes: its serializer is checked each time);
    a Queue keeps no state of its own between enqueues."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


class TryAgainLater(Exception):
    """Raised by a job that found its work not ready yet (files still being
    written, ...): RQ retries it as declared, and the worker logs one
    warning line instead of an error with a traceback."""


@dataclass(frozen=True)
class JobSpec:
    """How a job is queued; `description` is formatted with its arguments;
    `retry_intervals` lists the seconds before each retry (its length is the
    number of retries); `result_ttl` 0 keeps no result."""

    name: str
    queue: str
    timeout: int
    retry_intervals: tuple[int, ...] = ()
    result_ttl: int = 500
    failure_ttl: int = 86400
    description: str = ""

    def enqueue(
        self,
        connection: redis.Redis,
        *args: Any,
        queue: str | None = None,
        pipeline: Pipeline | None = None,
    ) -> Job:
        """Queue one run of the job with `args` (JSON-serializable), on its
        spec's queue unless `queue` names another (a media node's); with a
        `pipeline`, its writes join it (sent when the pipeline is executed)."""
        queue = _queue(queue or self.queue, connection)
        retry = None
        if self.retry_intervals:
            retry = Retry(max=len(self.retry_intervals), interval=list(self.retry_intervals))
        return queue.enqueue_call(
            self.name,
            args=args,
            timeout=self.timeout,
            result_ttl=self.result_ttl,
            failure_ttl=self.failure_ttl,
            retry=retry,
            description=(self.description or self.name.rsplit(".", 1)[-1] + "({})").format(*args),
            pipeline=pipeline,
        )

    def delay(self, *args: Any) -> Job:
        """`enqueue` on the current app's Redis, in the enclosing batch of
        writes if there is one (`studio.redis_client.batched_writes`)."""
        from studio.redis_client import batch, get_redis

        return self.enqueue(get_redis(), *args, pipeline=batch())

    def implements(self, func: F) -> F:
        """Bind the job function to this spec (its dotted name must be the
        spec's name): it gains `.spec`, `.name`, `.enqueue` and `.delay`."""
        name = f"{func.__module__}.{func.__qualname__}"
        if name != self.name:
            raise ValueError(f"job {name} does not match its declaration {self.name}")
        bound: Any = func
        bound.spec, bound.name = self, self.name
        bound.enqueue, bound.delay = self.enqueue, self.delay
        return func


SYNC_STREAM = JobSpec(
    "workers.jobs.sync_stream",
    UPLOADS,
    timeout=300,  # a long backlog is uploaded in parallel
    retry_intervals=(1, 5, 15),
    result_ttl=0,
    description="sync {}",
)
FINALIZE_BROADCAST = JobSpec(
    "workers.jobs.finalize_broadcast",
    REPLAYS,
    timeout=600,
    retry_intervals=(5, 15, 60, 120, 300),
    result_ttl=3600,
    failure_ttl=86400 * 7,
    description="finalize broadcast {}",
)
PURGE_STREAM = JobSpec(
    "workers.jobs.purge_stream",
    REPLAYS,  # behind live segments, and consumed by every worker role
    timeout=600,  # a long-lived stream has many objects, deleted one by one
    retry_intervals=(5, 15, 60, 120, 300),
    result_ttl=3600,
    failure_ttl=86400 * 7,
    description="purge stream {}",
)

MOVE_STREAM = JobSpec(
    "workers.jobs.move_stream",
    UPLOADS,  # viewers of the moved stream wait for it: ahead of replays
    timeout=600,  # a long-lived stream has many objects, copied one by one
    retry_intervals=(2, 5, 15, 60, 120),
    result_ttl=3600,
    failure_ttl=86400 * 7,
    description="move stream {} objects",
)

INVALIDATE_CDN = JobSpec(
    "workers.jobs.invalidate_cdn",
    REPLAYS,  # not urgent for viewers: behind live segments
    timeout=120,  # a token exchange and one request, each bounded at 30 s
    # Google rate-limits invalidations: back off, for about a day in all.
    retry_intervals=(30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600),
    result_ttl=3600,
    failure_ttl=86400 * 7,
    description="invalidate stream {} on the CDN (private folder too: {})",
)


def backoff(first: int, factor: int, longest: int, total: int) -> tuple[int, ...]:
    """Retry intervals growing by `factor` from `first` up to `longest`
    seconds each, until they add up to at least `total` seconds."""
    intervals: list[int] = []
    while sum(intervals) < total:
        intervals.append(min(first * factor ** len(intervals), longest))
    return tuple(intervals)


# 30 s, 1 min, 2 min ... capped at 4 h: 14 retries over about a day (24.3 h).
WEBHOOK_BACKOFF = backoff(30, 2, 4 * 3600, 86400)
DISPATCH_WEBHOOK_EVENT = JobSpec(
    "workers.jobs.dispatch_webhook_event",
    WEBHOOKS,
    timeout=60,  # one query, then one delivery job queued per endpoint
    retry_intervals=(5, 30, 120),
    result_ttl=0,
    description="webhook event of stream {}",
)
DELIVER_WEBHOOK = JobSpec(
    "workers.jobs.deliver_webhook",
    WEBHOOKS,
    timeout=60,  # one HTTP request bounded by STUDIO_WEBHOOK_TIMEOUT (at most 30 s)
    retry_intervals=WEBHOOK_BACKOFF,
    result_ttl=0,
    failure_ttl=86400 * 2,
    description="webhook to endpoint {}",
)
DELIVER_TEST_WEBHOOK = JobSpec(
    "workers.jobs.deliver_test_webhook",
    WEBHOOKS,
    timeout=60,
    result_ttl=0,  # one attempt: the creator sees its outcome in the log
    description="test webhook to endpoint {}",
)

REGISTRY: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        SYNC_STREAM,
        FINALIZE_BROADCAST,
        PURGE_STREAM,
        MOVE_STREAM,
        INVALIDATE_CDN,
        DISPATCH_WEBHOOK_EVENT,
        DELIVER_WEBHOOK,
        DELIVER_TEST_WEBHOOK,
    )
}
