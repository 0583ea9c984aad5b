#!/bin/sh
# Container entrypoint: `studio-entrypoint ROLE [ARGS...]`.
#
#   web        apply database migrations, then serve with gunicorn (gunicorn.conf.py)
#   sockets    the socket tier: gunicorn with gevent workers (gunicorn_sockets.conf.py),
#              which nginx sends every /ws/ route (no migrations: web runs them)
#   hooks      the callback tier: gunicorn for the media server's callbacks
#              (gunicorn_hooks.conf.py), which nginx's private port sends every
#              /hooks/ route, so pages never hold the threads SRS waits on
#   worker     RQ worker (jobs run in-process; metrics on $STUDIO_METRICS_PORT)
#   watcher    the HLS directory watcher (workers/watcher.py), metrics as above
#   reconciler the periodic reconcile pass (workers/reconcile.py), metrics as above
#   multistream the relays to multistream targets (workers/multistream.py), metrics as above
#   migrate    apply database migrations and exit
#   *          anything else is executed as given (e.g. `flask --app studio users create ...`)
#
# Migrations run here, once per web start, never in the app factory: several
# web replicas starting together are serialised by Alembic's version table lock.
set -eu

role="${1:-web}"
[ "$#" -gt 0 ] && shift

metrics_port="${STUDIO_METRICS_PORT:-9101}"
metrics_addr="${STUDIO_METRICS_ADDR:-0.0.0.0}"

migrate() {
    flask --app studio db upgrade
    # The media nodes STUDIO_MEDIA_NODES names (the reconciler and the
    # callbacks add them too, but the health route should know them at once).
    flask --app studio nodes sync --quiet
}

case "$role" in
web)
    mkdir -p "${PROMETHEUS_MULTIPROC_DIR:-/tmp/studio-metrics}"
    migrate
    exec gunicorn -c gunicorn.conf.py "$@" wsgi:app
    ;;
sockets)
    mkdir -p "${PROMETHEUS_MULTIPROC_DIR:-/tmp/studio-metrics}"
    exec gunicorn -c gunicorn_sockets.conf.py "$@" wsgi:app
    ;;
hooks)
    mkdir -p "${PROMETHEUS_MULTIPROC_DIR:-/tmp/studio-metrics}"
    exec gunicorn -c gunicorn_hooks.conf.py "$@" wsgi:app
    ;;
worker)
    # One metrics registry per process: no multiprocess directory for workers.
    unset PROMETHEUS_MULTIPROC_DIR
    # A media node's workers take its own queues and nothing else
    # (studio.media.jobs.node_queues); the shared ones everything else.
    queues="uploads replays webhooks default"
    node="${STUDIO_NODE_ID:-default}"
    [ "$node" = default ] || queues="segments.$node replays.$node"
    # shellcheck disable=SC2086 # the queue list is meant to split into words
    exec python -m studio.metrics_exporter --port "$metrics_port" --addr "$metrics_addr" \
        rq.cli worker --url "$REDIS_URL" --serializer json --with-scheduler \
        --worker-class workers.rq_worker.UploadWorker "$@" ${STUDIO_RQ_QUEUES:-$queues}
    ;;
watcher)
    unset PROMETHEUS_MULTIPROC_DIR
    exec python -m studio.metrics_exporter --port "$metrics_port" --addr "$metrics_addr" workers.watcher "$@"
    ;;
reconciler)
    unset PROMETHEUS_MULTIPROC_DIR
    exec python -m studio.metrics_exporter --port "$metrics_port" --addr "$metrics_addr" workers.reconcile --loop "$@"
    ;;
multistream)
    unset PROMETHEUS_MULTIPROC_DIR
    exec python -m studio.metrics_exporter --port "$metrics_port" --addr "$metrics_addr" workers.multistream "$@"
    ;;
migrate)
    migrate
    ;;
*)
    exec "$role" "$@"
    ;;
esac
