"""The RQ jobs of the upload pipeline, each declared once: its queue, timeout,
retries and result lifetimes are in its `@job(...)` line, and nowhere else.

`@job` records that declaration on the function and gives it
`.enqueue(connection, *args)` (and `.delay(*args)`, on the current app's
Redis), always with RQ's JSON serializer, so a caller names no option.

Jobs are thin entry points: they check their arguments, run in the worker's
app (`workers.context.job_app`) and call into `workers.pipeline`. That
import happens when a job runs, not when this module is imported: the web
process imports this module to enqueue, and never loads the storage client
or the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from workers.context import job_app

# Workers take jobs from their queues in this order: replays wait behind live
# segments.
UPLOADS = "uploads"
REPLAYS = "replays"
QUEUES = (UPLOADS, REPLAYS)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class JobSpec:
    """How a job is queued; `description` is formatted with its arguments."""

    name: str
    queue: str
    timeout: int
    retry_intervals: tuple[int, ...]
    result_ttl: int
    failure_ttl: int
    description: str

    def enqueue(self, connection: redis.Redis, *args: Any) -> Job:
        """Queue one run of the job with `args` (JSON-serializable)."""
        queue = Queue(self.queue, connection=connection, serializer=JSONSerializer)
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
            description=self.description.format(*args),
        )


class DeclaredJob(Protocol):
    """A job function as `@job` leaves it."""

    spec: JobSpec
    name: str

    def __call__(self, *args: Any) -> Any: ...
    def enqueue(self, connection: redis.Redis, *args: Any) -> Job: ...
    def delay(self, *args: Any) -> Job: ...


REGISTRY: dict[str, JobSpec] = {}


def job(
    queue: str,
    *,
    timeout: int,
    retry: Sequence[int] = (),
    result_ttl: int = 500,
    failure_ttl: int = 86400,
    description: str = "",
) -> Callable[[F], DeclaredJob]:
    """Declare a job (after Redash's `job` decorator).

    `retry` lists the seconds to wait before each retry (its length is the
    number of retries); `result_ttl` 0 keeps no result.
    """

    def declare(func: F) -> DeclaredJob:
        name = f"{func.__module__}.{func.__qualname__}"
        spec = JobSpec(
            name=name,
            queue=queue,
            timeout=timeout,
            retry_intervals=tuple(retry),
            result_ttl=result_ttl,
            failure_ttl=failure_ttl,
            description=description or f"{func.__name__}({{}})",
        )
        REGISTRY[name] = spec
        declared = cast(Any, func)
        declared.spec = spec
        declared.name = name
        declared.enqueue = spec.enqueue
        declared.delay = lambda *args: spec.enqueue(_current_redis(), *args)
        return cast(DeclaredJob, declared)

    return declare


def _current_redis() -> redis.Redis:
    from studio.redis_client import get_redis

    return get_redis()


# --- the jobs -----------------------------------------------------------------


@job(UPLOADS, timeout=300, retry=(1, 5, 15), result_ttl=0, description="sync {}")
def sync_stream(stream: str) -> dict:
    """Sync one stream's local HLS files to the bucket until it is clean.

    Idempotent and safe to run concurrently (the second runner only marks the
    stream dirty). Returns counts; raises ValueError for an invalid name.
    A long backlog gets its timeout: it is uploaded in parallel.
    """
    from workers.pipeline import local_hls, sync

    local_hls.check_stream_name(stream)
    with job_app() as app:
        return sync.sync_requested(app, stream).as_dict()


@job(
    REPLAYS,
    timeout=600,
    retry=(5, 15, 60, 120, 300),
    result_ttl=3600,
    failure_ttl=86400 * 7,
    description="finalize broadcast {}",
)
def finalize_broadcast(broadcast_id: int) -> dict:
    """Write the replay of an ended broadcast once all its segments are in
    the bucket (see `workers.pipeline.finalize.finalize`). Idempotent;
    raises ReplayIncomplete while segments are still on disk (RQ retries)."""
    from workers.pipeline import finalize

    with job_app() as app:
        return finalize.finalize(app, int(broadcast_id))


@job(
    REPLAYS,  # behind live segments, and consumed by every worker role
    timeout=600,  # a long-lived stream has many objects, deleted one by one
    retry=(5, 15, 60, 120, 300),
    result_ttl=3600,
    failure_ttl=86400 * 7,
    description="purge stream {}",
)
def purge_stream(stream: str) -> dict:
    """Delete a deleted stream's media from the bucket and the local disk
    (see `workers.pipeline.purge.purge`). Idempotent; raises ValueError for
    an invalid name, gcs.StorageError or StreamFilesBusy (RQ retries)."""
    from workers.pipeline import local_hls, purge

    local_hls.check_stream_name(stream)
    with job_app() as app:
        return purge.purge(app, stream)


@job(
    REPLAYS,  # behind live segments, and consumed by every worker role
    timeout=60,  # one segment download and one ffmpeg run (bounded at 20 s)
    retry=(2, 5),
    result_ttl=0,
    description="thumbnail of broadcast {}",
)
def make_thumbnail(broadcast_id: int) -> dict:
    """Cut the broadcast's thumbnail from its latest segment (see
    `workers.pipeline.thumbnails.make_thumbnail`). Idempotent; raises
    ThumbnailError or gcs.StorageError (RQ retries)."""
    from workers.pipeline import thumbnails

    with job_app() as app:
        return thumbnails.make_thumbnail(app, int(broadcast_id))
