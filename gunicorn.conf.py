"""gunicorn settings for the web role (`gunicorn -c gunicorn.conf.py wsgi:app`).

Graceful by design: `kill -HUP <master>` (or a new container behind the load
balancer) starts new workers before the old ones stop, and an old worker
finishes the requests it holds for up to `graceful_timeout` seconds. The
listening socket belongs to the master, so no connection is refused meanwhile.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from gunicorn.glogging import Logger

from studio.logging_setup import CHATTY_LOGGERS

bind = os.environ.get("STUDIO_BIND", "0.0.0.0:8000")  # noqa: S104 (inside a container)
# gthread: pages, API and media-server callbacks, all short requests.
# Websockets run on the socket tier (gunicorn_sockets.conf.py, gevent).
worker_class = "gthread"
workers = int(os.environ.get("STUDIO_WEB_WORKERS", "2"))
threads = int(os.environ.get("STUDIO_WEB_THREADS", "16"))
# A worker takes a connection only while it holds fewer than this many
# (requests under way, and at most IDLE_KEEPALIVE idle keep-alive ones; it
# closes any more after their response), so connections spread over the
# workers. Without the cap one worker accepts most of them (whichever wakes
# first) and keeps them: it serves their requests on one core while the
# other worker idles. Measured at 8 clients on 2 workers: p95 20 % lower
# for the API, 8 % lower for callbacks (docs/benchmarks.md).
IDLE_KEEPALIVE = 2
worker_connections = threads + IDLE_KEEPALIVE
# A worker that stops heart-beating for this long is killed and replaced.
timeout = 60
# On HUP/TERM an old worker may finish its requests for this long.
graceful_timeout = int(os.environ.get("STUDIO_GRACEFUL_TIMEOUT", "30"))
# Longer than nginx's upstream keepalive_timeout (60 s), so nginx closes first
# and never writes into a connection gunicorn is closing.
keepalive = 75
# Off: every (re)started worker imports the current code, which is what makes
# HUP a code deploy; it also keeps database and Redis sockets out of the master.
preload_app = False
# The heartbeat file is touched constantly: keep it off overlay/disk filesystems.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108
# A thread back from PostgreSQL or Redis waits for the interpreter's lock
# until the thread holding it lets go, after up to 5 ms (Python's default
# switch interval) when that one is busy: a request making round trips (the
# API, pages) can wait that long after each. 1 ms bounds the wait, at the
# price of more frequent switches (docs/benchmarks.md, "API latency"). The
# callback tier keeps the default; the socket tier takes this worker hook,
# where greenlets share one thread and the interval changes nothing.
switch_interval = 0.001
# Werkzeug-style access lines are noise next to the app's own request logs.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("STUDIO_LOG_LEVEL", "info").lower()
# gunicorn's own lines in the studio's JSON format, through the one handler
# the app uses too (studio/logging_setup.py); no access lines.
logconfig_dict = {
    "root": {"level": loglevel.upper(), "handlers": ["studio"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        **{name: {"level": "WARNING"} for name in CHATTY_LOGGERS},
    },
    "handlers": {"studio": {"()": "studio.logging_setup.make_handler"}},
    "formatters": {},
}


class StudioLogger(Logger):
    """gunicorn's logger, minus access lines. With `logconfig_dict` set,
    gunicorn builds every request's access-log fields only for the
    `gunicorn.access` logger above to drop them (about 2 % of a worker's
    time on callbacks, docs/benchmarks.md)."""

    def access(self, resp, req, environ, request_time) -> None:
        return None


logger_class = StudioLogger


def on_starting(server) -> None:
    """Empty the Prometheus multiprocess directory once per master start
    (never on HUP: the counters of a running deployment must carry on)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges (websocket clients) must stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """The worker's switch interval (above). Websockets hold worker threads:
    on a graceful stop (TERM, or HUP's replacement of workers) they close at
    once with 1001 and the pages reconnect to a live worker, instead of
    pinning this one until graceful_timeout."""
    import signal

    sys.setswitchinterval(switch_interval)
    from studio.live.hub import close_sockets_on

    close_sockets_on(signal.SIGTERM)
