"""The `reconciler` container role as a process: `python -m
studio.metrics_exporter --port P workers.reconcile --loop` runs passes on its
interval, serves its own metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from devtools import stack
from tests.conftest import ROOT, VAR
from tests.metrics_helpers import value
from tests.polling import poll
from tests.srs_api_double import SrsApiTestDouble


def test_reconciler_loop_serves_metrics_and_stops_on_sigterm(app, services, db, redis):
    """Passes run every interval against the SRS API test double (counted on
    the process's metrics port); an unknown publisher is kicked; SIGTERM ends it."""
    srs = SrsApiTestDouble()
    srs.publish("intruder999", "cidloop1")
    port = stack.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "reconciler-test",
        "STUDIO_MEDIA_ENGINE": "srs",
        "STUDIO_SRS_API_URL": srs.url,
        "STUDIO_RECONCILE_INTERVAL": "0.2",
        "STUDIO_RECONCILE_GRACE_SECONDS": "0.5",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = VAR / "logs" / f"reconciler-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "studio.metrics_exporter",
        "--port",
        str(port),
        "--addr",
        "127.0.0.1",
        "workers.reconcile",
        "--loop",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        stack.wait_for_port("127.0.0.1", port, 20, process, log_path)

        def runs() -> float:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return value(text, "studio_reconcile_runs_total", outcome="ok")

        poll(lambda: runs() >= 3 and srs.kicked, timeout=20, interval=0.1)
        assert runs() >= 3, log_path.read_text()
        assert srs.kicked == ["cidloop1"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        srs.stop()
