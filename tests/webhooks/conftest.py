"""Fixtures for webhooks: a real HTTP receiver on a local port, an RQ worker
run in burst mode on the webhooks queue, and the scheduled retries of RQ
released on demand (the clock of a day of backoff, moved forward)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from studio.media import jobs
from tests.api.helpers import Api
from tests.webhook_receiver import serve


@pytest.fixture()
def receiver():
    with serve() as state:
        yield state


@pytest.fixture()
def webhook_app(app, redis, monkeypatch):
    """The app with loopback allowed as a webhook address (the receiver is
    local) and a short delivery timeout."""
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOWED_NETWORKS", ["127.0.0.0/8"])
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT", 1.0)
    return app


def queue(redis) -> Queue:
    return Queue(jobs.WEBHOOKS, connection=redis, serializer=JSONSerializer)


def run_worker(redis) -> None:
    """A real RQ worker on the webhooks queue until the queue is empty."""
    SimpleWorker([queue(redis)], connection=redis, serializer=JSONSerializer).work(burst=True)


def release_retries(redis) -> list[float]:
    """Move every scheduled retry to its queue now (as RQ's scheduler would
    once its time came); returns each one's delay from now in seconds."""
    registry = ScheduledJobRegistry(queue=queue(redis))
    delays = []
    now = datetime.now(UTC)
    for job_id in registry.get_job_ids():
        delays.append((registry.get_scheduled_time(job_id) - now).total_seconds())
        registry.remove(job_id)
        job = queue(redis).fetch_job(job_id)
        queue(redis).enqueue_job(job)
    return delays


@pytest.fixture()
def creator_api(client, make_user, make_token):
    """(user, Api) of a new creator."""

    def factory():
        user = make_user()
        return user, Api(client, make_token(user))

    return factory
