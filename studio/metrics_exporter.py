"""Run a worker process with its own `/metrics` port.

    python -m studio.metrics_exporter --port 9101 \
        rq.cli worker -w workers.rq_worker.UploadWorker uploads

starts a Prometheus HTTP endpoint in a daemon thread, then runs the given
module as `__main__` with the remaining arguments. Workers (RQ, the HLS
watcher, the reconciler) run in their own containers, so the web tier's
`/metrics` cannot see their samples; Prometheus scrapes each of them here.
The worker must run jobs in-process (rq's SimpleWorker): samples recorded in
a forked child would die with it.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import signal
import sys


def _exit_cleanly(signum, frame):
    """SIGTERM/SIGINT before the module installs its own handlers: nothing
    has started yet, so stopping is a clean stop (exit 0, not -15)."""
    raise SystemExit(0)


# First thing, before the slower imports: an orchestrator may stop a worker
# at any moment of its start-up.
signal.signal(signal.SIGTERM, _exit_cleanly)
signal.signal(signal.SIGINT, _exit_cleanly)

from prometheus_client import start_http_server  # noqa: E402

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    """Parse `--port PORT [--addr ADDR] -- MODULE ARGS...`, serve metrics, run MODULE."""
    parser = argparse.ArgumentParser(prog="python -m studio.metrics_exporter")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--addr", default="0.0.0.0")  # noqa: S104 (container network)
    parser.add_argument("module")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    from studio.logging_setup import configure_process_logging  # imports Flask: not before

    configure_process_logging(os.environ.get("STUDIO_LOG_LEVEL", "INFO"))
    start_http_server(options.port, addr=options.addr)
    log.info("metrics on %s:%s for %s", options.addr, options.port, options.module)
    sys.argv = [options.module, *options.args]
    runpy.run_module(options.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
