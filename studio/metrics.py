"""Prometheus metrics shared by the web processes and the workers.

Every metric the studio records is defined here, once, so a gunicorn worker,
an RQ worker and the watcher all write the same series. Under gunicorn (and
in the containers) `PROMETHEUS_MULTIPROC_DIR` is set before this module is
imported: each process then writes its samples to a file in that directory
and `/metrics` adds them up (see `studio.observability`).

Gauges that describe the world rather than one process (live streams, queue
depth, HLS backlog) are not defined here: they are measured when `/metrics`
is scraped, so they are right however many processes run.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from studio.core import events

# --- HTTP -------------------------------------------------------------------

REQUEST_LATENCY = Histogram(
    "studio_http_request_duration_seconds",
    "Time to answer a request, by Flask endpoint (blueprint.view, never the raw path).",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REQUESTS = Counter(
    "studio_http_requests_total",
    "Requests answered, by endpoint and status class (2xx, 4xx, 5xx...).",
    ["endpoint", "method", "status"],
)

# --- media-server callbacks and broadcasts ----------------------------------

CALLBACKS = Counter(
    "studio_callbacks_total",
    "Media-server callbacks, by engine, event (on_publish...) and outcome "
    "(accepted, refused, invalid, unauthorized, error).",
    ["engine", "event", "outcome"],
)
BROADCASTS_STARTED = Counter(
    "studio_broadcasts_started_total",
    "Broadcasts that went live, by ingest protocol.",
    ["protocol"],
)
BROADCASTS_ENDED = Counter(
    "studio_broadcasts_ended_total",
    "Broadcasts that ended, by reason (unpublish, reconciled, duration_limit...).",
    ["reason"],
)
BROADCAST_RECONNECTS = Counter(
    "studio_broadcast_reconnects_total",
    "Publishers that dropped within a reconnect window (waiting) and that came "
    "back in time (resumed): one broadcast all along.",
    ["outcome"],
)
ENGINE_RESTARTS = Counter(
    "studio_srs_restarts_total",
    "Media engine restarts seen by the reconciler (a new service id).",
)
RECONCILE_ACTIONS = Counter(
    "studio_reconcile_actions_total",
    "What the reconciler did: ended (stale live stream), dropped (unknown "
    "publisher), duration_limit (over the maximum broadcast duration), "
    "reconnect_timeout (nobody reconnected within the stream's window).",
    ["action"],
)
RECONCILE_RUNS = Counter(
    "studio_reconcile_runs_total",
    "Reconciler passes, by outcome (ok, engine_error).",
    ["outcome"],
)

TARGET_FAILURES = Counter(
    "studio_target_failures_total",
    "Multistream targets that started failing (each then retries with backoff).",
)

# --- upload pipeline (written by workers/) ----------------------------------

UPLOAD_LAG = Histogram(
    "studio_upload_lag_seconds",
    "From a segment being complete on local disk to its object being in the bucket.",
    ["kind"],  # segment, playlist, replay
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0),
)
UPLOAD_FAILURES = Counter(
    "studio_upload_failures_total",
    "Uploads that failed for good (after their retries), by kind.",
    ["kind"],
)
UPLOAD_RETRIES = Counter(
    "studio_upload_retries_total",
    "Upload attempts that failed and were retried, by kind.",
    ["kind"],
)
UPLOADED_BYTES = Counter(
    "studio_uploaded_bytes_total",
    "Bytes written to the bucket (storage growth; the cost guard watches its rate).",
    ["kind"],
)

# --- webhooks (written by workers/webhooks.py) ------------------------------

WEBHOOK_DELIVERIES = Counter(
    "studio_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome: ok (2xx), failed (any other answer, "
    "a timeout, a refused connection), refused (the address is not allowed).",
    ["outcome"],
)
WEBHOOKS_DISABLED = Counter(
    "studio_webhooks_disabled_total",
    "Webhook endpoints disabled after every attempt of an event failed for a day.",
)

# --- websockets (written by studio/live) ------------------------------------

WEBSOCKET_CLIENTS = Gauge(
    "studio_websocket_clients",
    "Open websocket connections, by kind (status, ingest).",
    ["kind"],
    # Summed over the processes that are still alive: a dead worker's sockets are gone.
    multiprocess_mode="livesum",
)

# Measured at scrape time by studio.observability (listed here so every name
# the studio exports is in one place).
SCRAPE_TIME_METRICS = (
    "studio_live_streams",
    "studio_live_streams_without_recent_segments",
    "studio_queue_depth",
    "studio_queue_failed_jobs",
    "studio_hls_backlog_files",
    "studio_hls_oldest_file_age_seconds",
    "studio_hls_disk_used_ratio",
)


# --- domain events ----------------------------------------------------------


def _broadcast_started(event: events.BroadcastStarted) -> None:
    BROADCASTS_STARTED.labels(event.protocol).inc()


def _broadcast_ended(event: events.BroadcastEnded) -> None:
    BROADCASTS_ENDED.labels(event.reason).inc()


def _target_failed(event: events.TargetFailed) -> None:
    TARGET_FAILURES.inc()


def _reconnecting(event: events.StreamReconnecting) -> None:
    BROADCAST_RECONNECTS.labels("waiting").inc()


def _resumed(event: events.BroadcastResumed) -> None:
    BROADCAST_RECONNECTS.labels("resumed").inc()


def count_domain_events() -> None:
    """Count broadcasts started and ended, and multistream targets failing,
    once they are committed (called at start-up of every process that
    changes the database)."""
    events.subscribe(events.BroadcastStarted, _broadcast_started)
    events.subscribe(events.BroadcastEnded, _broadcast_ended)
    events.subscribe(events.TargetFailed, _target_failed)
    events.subscribe(events.StreamReconnecting, _reconnecting)
    events.subscribe(events.BroadcastResumed, _resumed)
