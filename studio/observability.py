"""`/metrics` for Prometheus, and the hooks that feed it.

Correct under several gunicorn workers: with `PROMETHEUS_MULTIPROC_DIR` set,
every process writes its counters to files in that directory and a scrape adds
them up (gunicorn's `child_exit` hook, in gunicorn.conf.py, marks a dead
worker so its live gauges stop counting). Gauges about shared state (live
streams, queue depth, HLS backlog) are measured from PostgreSQL, Redis and the
HLS directory at scrape time, by whichever process answers the scrape.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from studio import metrics
from studio.extensions import db
from studio.media import engines, nodes
from studio.models import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("observability", __name__)

HOOK_ENDPOINT = "hooks.callback"


# Websocket endpoints (flask-sock: the view runs for the socket's lifetime).
WEBSOCKET_ENDPOINTS = {"live.stream_socket": "status", "live.ingest_socket": "ingest"}


def init_app(app: Flask) -> None:
    """Time every request and count callbacks; gauge open websockets;
    register `/metrics`. Call after the blueprints are registered."""
    app.before_request(_start_timer)
    app.after_request(_record_request)
    for endpoint, kind in WEBSOCKET_ENDPOINTS.items():
        view = app.view_functions.get(endpoint)
        if view is not None:
            app.view_functions[endpoint] = _counted_socket(view, kind)
    app.register_blueprint(bp)


def _counted_socket(view, kind: str):
    gauge = metrics.WEBSOCKET_CLIENTS.labels(kind)

    @functools.wraps(view)
    def counted(*args, **kwargs):
        gauge.inc()
        try:
            return view(*args, **kwargs)
        finally:
            gauge.dec()

    return counted


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _record_request(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    endpoint = request.endpoint or "unmatched"  # 404s share one label, never the raw path
    if started is not None:
        elapsed = time.perf_counter() - started
        metrics.REQUEST_LATENCY.labels(endpoint, request.method).observe(elapsed)
    metrics.REQUESTS.labels(endpoint, request.method, f"{response.status_code // 100}xx").inc()
    if endpoint == HOOK_ENDPOINT:
        _record_callback(response)
    return response


def _record_callback(response: Response) -> None:
    """Count a callback by what the hook view decided (`g.hook`); a request
    refused before the view decided (bad text, too large, a crash) counts
    as event "other" with an outcome from its status."""
    # Popped: an app context (and its `g`) may outlive one request in tests.
    decision = g.pop("hook", None)
    dialect = decision.dialect if decision is not None else _dialect_of_url()
    if dialect is None:
        return  # no such dialect: a 404, not a callback
    event = decision.event if decision is not None else "other"
    outcome = decision.outcome if decision is not None else None
    if outcome is None or response.status_code >= 500:
        outcome = callback_outcome(response.status_code)
    metrics.CALLBACKS.labels(dialect, event, outcome).inc()


def _dialect_of_url() -> str | None:
    name = (request.view_args or {}).get("dialect", "")
    return name if engines.dialect(name) is not None else None


def callback_outcome(status: int) -> str:
    """error / invalid / refused: the outcome of a callback the hook view did
    not decide, from its HTTP status."""
    if status >= 500:
        return "error"
    if status == 400:
        return "invalid"
    return "refused"


@bp.get("/metrics")
def metrics_view() -> Response:
    """Prometheus exposition of every process's metrics plus scrape-time gauges."""
    registry = CollectorRegistry()
    registry.register(StudioStateCollector(current_app._get_current_object()))
    state = generate_latest(registry)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        own = generate_latest(processes)
    else:
        own = generate_latest(REGISTRY)
    return Response(own + state, mimetype=CONTENT_TYPE_LATEST)


class StudioStateCollector(Collector):
    """Gauges measured when scraped; each source fails on its own (logged, omitted)."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for source in (self._database, self._nodes, self._queues, self._hls_dir):
            try:
                yield from source()
            except Exception:  # a scrape must never fail because one source is down
                log.warning("metrics source %s failed", source.__name__, exc_info=True)

    def _database(self) -> Iterator[GaugeMetricFamily]:
        try:
            live = db.session.scalar(text("SELECT count(*) FROM streams WHERE status = 'live'"))
            stale_after = timedelta(seconds=stale_segment_seconds(self.app))
            cutoff = utcnow() - stale_after
            stale = db.session.scalar(
                text(
                    # A reconnecting stream has no publisher to make segments.
                    "SELECT count(*) FROM broadcasts b JOIN streams st ON st.id = b.stream_id"
                    " WHERE b.ended_at IS NULL AND st.status = 'live'"
                    " AND b.started_at < :cutoff AND NOT EXISTS (SELECT 1 FROM segments s"
                    " WHERE s.broadcast_id = b.id AND s.uploaded_at >= :cutoff)"
                ),
                {"cutoff": cutoff},
            )
        finally:
            db.session.remove()
        yield GaugeMetricFamily("studio_live_streams", "Streams live right now.", value=live)
        yield GaugeMetricFamily(
            "studio_live_streams_without_recent_segments",
            "Live broadcasts (not reconnecting) with no segment uploaded in the last "
            f"{int(stale_after.total_seconds())} s (and older than that).",
            value=stale,
        )

    def _nodes(self) -> Iterator[GaugeMetricFamily]:
        """Per media node: live streams, capacity, draining, engine answering."""
        try:
            rows = nodes.listing(db.session)
        finally:
            db.session.remove()
        now = utcnow()
        max_age = nodes.up_max_age(self.app.config)
        families = {
            "live": GaugeMetricFamily(
                "studio_media_node_live_streams",
                "Live and reconnecting streams held by each media node.",
                labels=["node"],
            ),
            "capacity": GaugeMetricFamily(
                "studio_media_node_capacity",
                "Live streams each media node should hold (0: no limit).",
                labels=["node"],
            ),
            "draining": GaugeMetricFamily(
                "studio_media_node_draining",
                "1 while a media node is draining (takes no new publisher).",
                labels=["node"],
            ),
            "up": GaugeMetricFamily(
                "studio_media_node_up",
                "1 while a media node's engine answers the reconciler.",
                labels=["node"],
            ),
        }
        for node in rows:
            families["live"].add_metric([node.id], node.live)
            families["capacity"].add_metric([node.id], node.capacity)
            families["draining"].add_metric([node.id], int(node.draining))
            families["up"].add_metric([node.id], int(nodes.is_up(node, now, max_age)))
        yield from families.values()

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        from rq import Queue
        from rq.registry import FailedJobRegistry

        from studio.redis_client import get_redis

        connection = get_redis(self.app)
        depth = GaugeMetricFamily(
            "studio_queue_depth", "Jobs waiting, by RQ queue.", labels=["queue"]
        )
        failed = GaugeMetricFamily(
            "studio_queue_failed_jobs",
            "Jobs in the failed registry, by RQ queue.",
            labels=["queue"],
        )
        for queue in Queue.all(connection=connection):
            depth.add_metric([queue.name], queue.count)
            failed.add_metric([queue.name], FailedJobRegistry(queue=queue).count)
        yield depth
        yield failed

    def _hls_dir(self) -> Iterator[GaugeMetricFamily]:
        hls_dir = Path(self.app.config["HLS_DIR"])
        count, oldest = hls_backlog(hls_dir)
        yield GaugeMetricFamily(
            "studio_hls_backlog_files",
            "Segment files in the local HLS directory (written, not yet uploaded and removed).",
            value=count,
        )
        yield GaugeMetricFamily(
            "studio_hls_oldest_file_age_seconds",
            "Age of the oldest segment file in the local HLS directory.",
            value=oldest,
        )
        if hls_dir.is_dir():
            usage = shutil.disk_usage(hls_dir)
            yield GaugeMetricFamily(
                "studio_hls_disk_used_ratio",
                "Share of the HLS directory's filesystem in use (0..1).",
                value=usage.used / usage.total if usage.total else 0.0,
            )


def stale_segment_seconds(app: Flask) -> float:
    """How long an open broadcast may go without a new segment before it counts as stale."""
    return max(30.0, 10 * float(app.config.get("HLS_FRAGMENT", 2)))


def hls_backlog(hls_dir: Path) -> tuple[int, float]:
    """(number of .ts files under hls_dir, age in seconds of the oldest one)."""
    count, oldest_mtime = 0, None
    now = time.time()
    for root, _dirs, files in os.walk(hls_dir):
        for name in files:
            if not name.endswith(".ts"):
                continue
            try:
                mtime = os.stat(os.path.join(root, name)).st_mtime
            except FileNotFoundError:  # uploaded and removed while we walked
                continue
            count += 1
            oldest_mtime = mtime if oldest_mtime is None else min(oldest_mtime, mtime)
    return count, (now - oldest_mtime) if oldest_mtime is not None else 0.0
