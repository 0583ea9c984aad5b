"""The app's Redis connection (pub/sub fan-out, RQ queue, rate limits), and
batches of the writes that follow a commit (one round trip for all of them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import redis
from flask import Flask, current_app
from redis.client import Pipeline

log = logging.getLogger(__name__)
_batch: ContextVar[Pipeline | None] = ContextVar("studio_redis_batch", default=None)


def get_redis(app: Flask | None = None) -> redis.Redis:
    """Return the app's Redis client, created on first use (never at import)."""
    app = app or current_app
    client = app.extensions.get("studio_redis")
    if client is None:
        client = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2
        )
        app.extensions["studio_redis"] = client
    return client


@contextmanager
def batched_writes(app: Flask | None = None) -> Iterator[None]:
    """Within this block, the writes of `batch()` users (status messages,
    queued jobs) are buffered in one MULTI/EXEC pipeline, sent in a single
    round trip when the block ends. Redis failing then is logged, as each
    writer would have logged it: the committed change stands. Nested blocks
    join the outer one."""
    if _batch.get() is not None:
        yield
        return
    pipeline = get_redis(app).pipeline()
    pipeline.multi()  # explicit: RQ's enqueue with a pipeline joins it instead of failing
    token = _batch.set(pipeline)
    try:
        yield
    finally:
        _batch.reset(token)
        try:
            if len(pipeline):
                pipeline.execute()
        except redis.RedisError:
            log.warning("batched Redis writes failed (%d commands)", len(pipeline), exc_info=True)
        finally:
            pipeline.reset()


def batch() -> Pipeline | None:
    """The pipeline of the enclosing `batched_writes` block, if any: a write
    nobody reads back may go there instead of to the client."""
    return _batch.get()
