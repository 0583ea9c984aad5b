"""Each job carries what its declaration says into RQ: queue, timeout,
retries, result lifetimes, a readable description, the JSON serializer."""

from __future__ import annotations

import json
import zlib

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from studio.media import pipeline
from workers import jobs


def _only_job(redis, queue: str):
    found = Queue(queue, connection=redis, serializer=JSONSerializer).get_jobs()
    assert len(found) == 1, found
    return found[0]


def test_a_sync_request_queues_the_declared_sync_job(redis):
    """What an operator sees in RQ for a sync: the uploads queue, its
    timeout, three retries, no kept result, JSON arguments."""
    assert pipeline.request_sync(redis, "cam_1")
    queued = _only_job(redis, jobs.UPLOADS)
    assert queued.func_name == "workers.jobs.sync_stream"
    assert queued.args == ["cam_1"]
    assert (queued.timeout, queued.result_ttl, queued.failure_ttl) == (300, 0, 86400)
    assert (queued.retries_left, queued.retry_intervals) == (3, [1, 5, 15])
    assert queued.description == "sync cam_1"
    # RQ stores (function, instance, args, kwargs), zlib-compressed: JSON, not pickle.
    stored = json.loads(zlib.decompress(redis.hget(queued.key, "data")))
    assert stored[0] == "workers.jobs.sync_stream" and stored[2] == ["cam_1"]


def test_finalize_and_purge_queue_behind_uploads_with_their_retries(redis):
    """Replays and purges go to the replays queue (behind live segments),
    with five spaced retries and results kept for an hour."""
    pipeline.request_finalize(redis, 42)
    pipeline.request_purge(redis, "gone_1")
    finalize, purge = sorted(
        Queue(jobs.REPLAYS, connection=redis, serializer=JSONSerializer).get_jobs(),
        key=lambda job: job.func_name,
    )
    assert (finalize.func_name, finalize.args) == ("workers.jobs.finalize_broadcast", [42])
    assert (purge.func_name, purge.args) == ("workers.jobs.purge_stream", ["gone_1"])
    for queued in (finalize, purge):
        assert queued.timeout == 600
        assert (queued.retries_left, queued.retry_intervals) == (5, [5, 15, 60, 120, 300])
        assert (queued.result_ttl, queued.failure_ttl) == (3600, 86400 * 7)
    assert finalize.description == "finalize broadcast 42"
    assert purge.description == "purge stream gone_1"


def test_every_job_is_declared_once_in_the_registry():
    """Every job of the pipeline has one declaration, the one RQ gets."""
    assert set(jobs.REGISTRY) == {
        "workers.jobs.sync_stream",
        "workers.jobs.finalize_broadcast",
        "workers.jobs.purge_stream",
        "workers.jobs.move_stream",
        "workers.jobs.invalidate_cdn",
        "workers.jobs.dispatch_webhook_event",
        "workers.jobs.deliver_webhook",
        "workers.jobs.deliver_test_webhook",
    }
    assert jobs.sync_stream.spec is jobs.REGISTRY["workers.jobs.sync_stream"]
    for name, spec in jobs.REGISTRY.items():
        assert getattr(jobs, name.rsplit(".", 1)[1]).spec is spec  # each is implemented


def test_webhook_jobs_have_their_own_queue_and_a_day_of_backoff(redis):
    """Deliveries wait on other people's servers: a queue of their own, taken
    after the media queues; retries double from 30 s up to 4 h and add up
    to about a day; a test event is tried once."""
    assert jobs.QUEUES == (jobs.UPLOADS, jobs.REPLAYS, jobs.WEBHOOKS)
    event = {"id": "evt_1", "type": "stream.live", "data": {}}
    jobs.DELIVER_WEBHOOK.enqueue(redis, 7, event)
    queued = _only_job(redis, jobs.WEBHOOKS)
    assert (queued.func_name, queued.args) == ("workers.jobs.deliver_webhook", [7, event])
    intervals = queued.retry_intervals
    assert intervals[:4] == [30, 60, 120, 240] and max(intervals) == 4 * 3600
    assert all(b == min(a * 2, 4 * 3600) for a, b in zip(intervals, intervals[1:], strict=False))
    assert 86400 <= sum(intervals) < 86400 + 4 * 3600
    assert queued.retries_left == len(intervals) == 14
    Queue(jobs.WEBHOOKS, connection=redis, serializer=JSONSerializer).empty()
    jobs.DELIVER_TEST_WEBHOOK.enqueue(redis, 7, event)
    assert _only_job(redis, jobs.WEBHOOKS).retries_left is None


def test_a_job_must_match_its_declaration():
    """Binding a function to another job's declaration is refused."""

    def sync_stream(stream):
        return stream

    with pytest.raises(ValueError, match="does not match"):
        jobs.SYNC_STREAM.implements(sync_stream)


def test_delay_queues_on_the_current_apps_redis(app, redis):
    """`.delay()` needs no connection: it uses the current app's Redis."""
    with app.app_context():
        jobs.purge_stream.delay("gone_2")
    assert _only_job(redis, jobs.REPLAYS).args == ["gone_2"]
