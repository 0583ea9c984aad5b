"""The media engine behind one boundary: SRS 5 in production, nginx-rtmp on
bare metal, in development and in the tests.

The engine is chosen once at start-up (`init_app`, from MEDIA_ENGINE); the
rest of the studio asks `current()` to drop a publisher, list publishers or
say which ingest protocols it offers, and hands a callback to the engine's
dialect (`dialect(name)`) to get a domain command back. Only the modules of
this package know an engine's API or callback format.

With a pool of media nodes (STUDIO_MEDIA_NODES, `studio.media.nodes`) every
node runs the same engine at its own API URL: `for_node(node_id)` is the
engine of one node (what a stream's drop, stats and reconcile go to);
`current()` stays the engine of the implicit single node `default`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, current_app

from studio.core import events
from studio.extensions import db
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
    "for_node",
    "init_app",
]
log = logging.getLogger(__name__)
EXTENSION = "studio_media_engine"
NODE_ENGINES = "studio_media_node_engines"  # (engine name, api_url) -> engine
DEFAULT_NODE = "default"
# Every engine's callbacks are accepted whichever engine runs: a callback
# names its dialect in its URL (`/hooks/<name>`).
_DIALECTS: dict[str, CallbackDialect] = {
    srs.Callbacks.name: srs.Callbacks(),
    nginx_rtmp.Callbacks.name: nginx_rtmp.Callbacks(),
}


def build(config: Mapping, api_url: str | None = None) -> MediaEngine:
    """The engine MEDIA_ENGINE names, at `api_url` (default: SRS_API_URL or
    NGINX_CONTROL_URL from `config`)."""
    if config["MEDIA_ENGINE"] == srs.NAME:
        return srs.Engine(api_url or config["SRS_API_URL"])
    return nginx_rtmp.Engine(api_url or config["NGINX_CONTROL_URL"])


def for_node(node_id: str | None, app: Flask | None = None) -> MediaEngine:
    """The engine of media node `node_id` (None: a stream live before nodes
    existed, on `default`). Without STUDIO_MEDIA_NODES that is `current()`.
    A node's API URL comes from STUDIO_MEDIA_NODES, else from its row (a node
    an operator added); engines are cached per URL. Raises EngineError for a
    node nobody knows."""
    app = app or current_app
    configured = app.config.get("MEDIA_NODES") or []
    node_id = node_id or DEFAULT_NODE
    if not configured and node_id == DEFAULT_NODE:
        return current(app)
    api_url = next((node["api_url"] for node in configured if node["id"] == node_id), None)
    if api_url is None:
        from studio.models import MediaNode

        row = db.session.get(MediaNode, node_id)
        if row is None:
            raise EngineError(f"unknown media node '{node_id}'")
        api_url = row.api_url
    cache = app.extensions.setdefault(NODE_ENGINES, {})
    key = (app.config["MEDIA_ENGINE"], api_url)
    if key not in cache:
        cache[key] = build(app.config, api_url)
    return cache[key]


def current(app: Flask | None = None) -> MediaEngine:
    """The engine chosen when the app (the current one by default) started."""
    return (app or current_app).extensions[EXTENSION]


def dialect(name: str) -> CallbackDialect | None:
    """The callback dialect served at `/hooks/<name>`, or None."""
    return _DIALECTS.get(name)


def _drop_revoked(event: events.PublisherRevoked) -> None:
    engine = for_node(event.node_id)
    engine.drop_publisher(Publisher(event.stream, event.client_id, event.server_id))


def init_app(app: Flask) -> None:
    """Choose the engine and drop revoked publishers after each commit. No I/O."""
    app.extensions[EXTENSION] = build(app.config)
    events.subscribe(events.PublisherRevoked, _drop_revoked)
