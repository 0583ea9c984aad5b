"""The media engine behind one boundary: SRS 5 in production, nginx-rtmp on
bare metal, in development and in the tests.

The engine is chosen once at start-up (`init_app`, from MEDIA_ENGINE); the
rest of the studio asks `current()` to drop a publisher, list publishers or
say which ingest protocols it offers, and hands a callback to the engine's
dialect (`dialect(name)`) to get a domain command back. Only the modules of
this package know an engine's API or callback format.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, current_app

from studio.core import events
from studio.media.engines import nginx_rtmp, srs
from studio.media.engines.base import (
    CallbackDialect,
    CallbackError,
    EngineError,
    EngineSnapshot,
    IngestStats,
    MediaEngine,
    Publisher,
)

__all__ = [
    "CallbackDialect",
    "CallbackError",
    "EngineError",
    "EngineSnapshot",
    "IngestStats",
    "MediaEngine",
    "Publisher",
    "build",
    "current",
    "dialect",
    "init_app",
]
log = logging.getLogger(__name__)
EXTENSION = "studio_media_engine"
# Every engine's callbacks are accepted whichever engine runs: a callback
# names its dialect in its URL (`/hooks/<name>`).
_DIALECTS: dict[str, CallbackDialect] = {
    srs.Callbacks.name: srs.Callbacks(),
    nginx_rtmp.Callbacks.name: nginx_rtmp.Callbacks(),
}


def build(config: Mapping) -> MediaEngine:
    """The engine MEDIA_ENGINE names, configured from `config`."""
    if config["MEDIA_ENGINE"] == srs.NAME:
        return srs.Engine(config["SRS_API_URL"])
    return nginx_rtmp.Engine(config["NGINX_CONTROL_URL"])


def current(app: Flask | None = None) -> MediaEngine:
    """The engine chosen when the app (the current one by default) started."""
    return (app or current_app).extensions[EXTENSION]


def dialect(name: str) -> CallbackDialect | None:
    """The callback dialect served at `/hooks/<name>`, or None."""
    return _DIALECTS.get(name)


def _drop_revoked(event: events.PublisherRevoked) -> None:
    current().drop_publisher(Publisher(event.stream, event.client_id, event.server_id))


def init_app(app: Flask) -> None:
    """Choose the engine and drop revoked publishers after each commit. No I/O."""
    app.extensions[EXTENSION] = build(app.config)
    events.subscribe(events.PublisherRevoked, _drop_revoked)
