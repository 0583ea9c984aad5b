"""The RQ jobs of the upload pipeline: thin entry points.

Each is declared (queue, timeout, retries, result lifetimes) once, in
`studio/media/jobs.py`, and bound to that declaration here with
`@SPEC.implements`, which gives it `.enqueue(connection, *args)` and
`.delay(*args)` (RQ's JSON serializer). A job checks its arguments, runs in
the worker's app (`workers.context.job_app`) and calls into
`workers.pipeline`, imported when the job runs: the web process enqueues
through `studio.media.jobs` and never imports this module.
"""

from __future__ import annotations

from studio.media.jobs import (  # noqa: F401 (the declarations, for callers of this module)
    DEFAULT_NODE,
    DELIVER_TEST_WEBHOOK,
    DELIVER_WEBHOOK,
    DISPATCH_WEBHOOK_EVENT,
    FINALIZE_BROADCAST,
    INVALIDATE_CDN,
    MOVE_STREAM,
    PURGE_STREAM,
    QUEUES,
    REGISTRY,
    REPLAYS,
    SYNC_STREAM,
    UPLOADS,
    WEBHOOKS,
    JobSpec,
    queue_node,
)
from workers.context import job_app

# --- the jobs -----------------------------------------------------------------


@SYNC_STREAM.implements
def sync_stream(stream: str) -> dict:
    """Sync one stream's local HLS files to the bucket until it is clean,
    then the other dirty streams of the node whose queue it was taken from
    (see `workers.pipeline.drainer`).

    Idempotent and safe to run concurrently (a second runner of a stream only
    marks it dirty). Returns counts; raises ValueError for an invalid name.
    A long backlog gets its timeout: it is uploaded in parallel.
    """
    from rq import get_current_job

    from workers.pipeline import drainer, local_hls

    local_hls.check_stream_name(stream)
    job = get_current_job()
    node_id = queue_node(job.origin) if job is not None else DEFAULT_NODE
    with job_app() as app:
        return drainer.sync_requested(app, stream, node_id).as_dict()


@FINALIZE_BROADCAST.implements
def finalize_broadcast(broadcast_id: int) -> dict:
    """Write the replay of an ended broadcast once all its segments are in
    the bucket (see `workers.pipeline.finalize.finalize`). Idempotent;
    raises ReplayIncomplete while segments are still on disk (RQ retries)."""
    from workers.pipeline import finalize

    with job_app() as app:
        return finalize.finalize(app, int(broadcast_id))


@PURGE_STREAM.implements
def purge_stream(stream: str) -> dict:
    """Delete a deleted stream's media from the bucket and the local disk
    (see `workers.pipeline.purge.purge`). Idempotent; raises ValueError for
    an invalid name, gcs.StorageError or StreamFilesBusy (RQ retries)."""
    from workers.pipeline import local_hls, purge

    local_hls.check_stream_name(stream)
    with job_app() as app:
        return purge.purge(app, stream)


@MOVE_STREAM.implements
def move_stream(stream: str) -> dict:
    """Move a stream's objects to the prefix its visibility asks for (see
    `workers.pipeline.visibility.move`). Idempotent; raises ValueError for an
    invalid name, gcs.StorageError (RQ retries)."""
    from workers.pipeline import local_hls, visibility

    local_hls.check_stream_name(stream)
    with job_app() as app:
        return visibility.move(app, stream)


@INVALIDATE_CDN.implements
def invalidate_cdn(stream: str, private_too: bool = False) -> dict:
    """Ask Cloud CDN to drop the cached objects of the stream's public
    folder (and, `private_too`, of its private one) (see
    `studio.storage.cdn`). Raises ValueError for invalid arguments,
    CdnError (RQ retries)."""
    from studio.storage import cdn
    from workers.pipeline import local_hls

    local_hls.check_stream_name(stream)
    if not isinstance(private_too, bool):
        raise ValueError(f"private_too must be true or false, not {private_too!r}")
    with job_app() as app:
        folders = [False, True] if private_too else [False]
        patterns = [cdn.path_pattern(stream, private) for private in folders]
        operations = cdn.invalidate(app.config, patterns)
    return {"invalidated": patterns, "operations": operations}


@DISPATCH_WEBHOOK_EVENT.implements
def dispatch_webhook_event(stream: str, event: dict) -> dict:
    """Queue a delivery of a webhook event to each endpoint of the stream's
    owner that chose it (see `workers.webhooks.dispatch`)."""
    from workers import webhooks

    _check_event(event)
    with job_app() as app:
        return webhooks.dispatch(app, str(stream), event)


@DELIVER_WEBHOOK.implements
def deliver_webhook(endpoint_id: int, event: dict) -> dict:
    """One delivery attempt (see `workers.webhooks.deliver`); raises
    DeliveryFailed for RQ to retry with backoff, except on the last attempt,
    which disables the endpoint instead."""
    from workers import webhooks

    _check_event(event)
    with job_app() as app:
        return webhooks.deliver(app, int(endpoint_id), event)


@DELIVER_TEST_WEBHOOK.implements
def deliver_test_webhook(endpoint_id: int, event: dict) -> dict:
    """The "Send test event" delivery: one attempt, logged; a success
    enables a disabled endpoint again."""
    from workers import webhooks

    _check_event(event)
    with job_app() as app:
        return webhooks.deliver(app, int(endpoint_id), event, test=True)


def _check_event(event: object) -> None:
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ValueError("a webhook event is a JSON object with a type")
