"""The app's Redis connection (pub/sub fan-out, RQ queue, rate limits)."""

from __future__ import annotations

import redis
from flask import Flask, current_app


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
