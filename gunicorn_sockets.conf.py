"""gunicorn settings for the socket tier (`gunicorn -c gunicorn_sockets.conf.py wsgi:app`).

The same app as the web tier, but nginx sends it only the `/ws/` routes.
A websocket lives for as long as a page stays open; on the web tier's
gthread workers each one held a thread, so a few dozen viewers left no
thread for pages or the media server's callbacks. Here gevent workers give
each socket a greenlet (tens of kilobytes), so one process holds thousands,
and the web tier keeps its threads for short requests.

Per socket the handlers touch the database only on connect and on a resync
(psycopg waits through gevent once gevent has patched the standard
library, as gunicorn's gevent worker does), and Redis not at all: one pattern
subscription per process fans events out (studio/live/hub.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from runpy import run_path

# The web tier's server hooks (Prometheus multiprocess directory, dead
# workers' gauges) and logging: one definition for every tier.
_web = run_path(str(Path(__file__).with_name("gunicorn.conf.py")))

bind = os.environ.get("STUDIO_SOCKETS_BIND", "0.0.0.0:8001")  # noqa: S104 (inside a container)
worker_class = "gevent"
# One process per core is plenty: a socket costs a greenlet, not a thread.
workers = int(os.environ.get("STUDIO_SOCKET_WORKERS", "2"))
# Sockets per worker process; nginx's per-address limit sits in front.
worker_connections = int(os.environ.get("STUDIO_SOCKET_CONNECTIONS", "5000"))
timeout = 60
graceful_timeout = int(os.environ.get("STUDIO_GRACEFUL_TIMEOUT", "30"))
keepalive = 75
preload_app = False
worker_tmp_dir = _web["worker_tmp_dir"]
accesslog = None
errorlog = "-"
loglevel = _web["loglevel"]
# JSON lines like every process (studio/logging_setup.py): importing it loads
# no Flask, so the master stays free of modules gevent would patch too late.
logconfig_dict = _web["logconfig_dict"]
logger_class = _web["logger_class"]

on_starting = _web["on_starting"]
child_exit = _web["child_exit"]
post_worker_init = _web["post_worker_init"]
