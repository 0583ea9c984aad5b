"""gunicorn settings for the callback tier (`gunicorn -c gunicorn_hooks.conf.py wsgi:app`).

The same app as the web tier, but the media servers' callbacks (`/hooks/`)
are sent here: SRS's and nginx-rtmp's hook URLs name this tier (through
nginx's private port in production, deploy/nginx/studio.conf). SRS gives a
callback 30 s before it drops the publisher; on the web tier a burst of slow
pages or API calls (or a stuck worker) could hold every thread past that.
Here callbacks queue behind callbacks only, and each one is short (a few
queries), so a small pool is plenty.
"""

from __future__ import annotations

import os
from pathlib import Path
from runpy import run_path

# The web tier's settings and server hooks (Prometheus multiprocess
# directory, dead workers' gauges, logging): one definition for every tier.
_web = run_path(str(Path(__file__).with_name("gunicorn.conf.py")))

bind = os.environ.get("STUDIO_HOOKS_BIND", "0.0.0.0:8002")  # noqa: S104 (inside a container)
worker_class = "gthread"
# Two processes: one stuck worker (a hung query) leaves the other answering.
workers = int(os.environ.get("STUDIO_HOOKS_WORKERS", "2"))
threads = int(os.environ.get("STUDIO_HOOKS_THREADS", "8"))
# As on the web tier: connections spread over the workers.
worker_connections = threads + _web["IDLE_KEEPALIVE"]
timeout = _web["timeout"]
graceful_timeout = int(os.environ.get("STUDIO_GRACEFUL_TIMEOUT", "30"))
keepalive = _web["keepalive"]
preload_app = False
worker_tmp_dir = _web["worker_tmp_dir"]
accesslog = None
errorlog = "-"
loglevel = _web["loglevel"]
logconfig_dict = _web["logconfig_dict"]
logger_class = _web["logger_class"]

on_starting = _web["on_starting"]
child_exit = _web["child_exit"]
