"""Running the queued jobs in the test's process."""

from __future__ import annotations

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from studio.media import pipeline


def run_jobs(redis) -> None:
    """Work every media queue until it is empty (a burst worker, in-process:
    jobs run in the test's app)."""
    queues = [pipeline.media_queue(redis, name) for name in pipeline.QUEUES]
    SimpleWorker(queues, connection=redis, serializer=JSONSerializer).work(burst=True)
