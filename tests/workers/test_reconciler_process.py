"""The `reconciler` container role as a process: `python -m
studio.metrics_exporter --port P workers.reconcile --loop` runs passes on its
interval, serves its own metrics, and stops cleanly on SIGTERM."""

from __future__ import annotations

import requests

from tests.metrics_helpers import value
from tests.polling import poll
from tests.srs_api_double import SrsApiTestDouble
from tests.workers.test_reconciler_outages import reconciler


def test_reconciler_loop_serves_metrics_and_stops_on_sigterm(app, services, db, redis):
    """Passes run every interval against the SRS API test double (counted on
    the process's metrics port); an unknown publisher is kicked; SIGTERM ends it."""
    srs = SrsApiTestDouble()
    srs.publish("intruder999", "cidloop1")
    try:
        with reconciler(services["database_url"], services["redis_url"], srs) as proc:

            def runs() -> float:
                text = requests.get(proc["metrics"], timeout=5).text
                return value(text, "studio_reconcile_runs_total", outcome="ok")

            poll(lambda: runs() >= 3 and srs.kicked, timeout=20, interval=0.1)
            assert runs() >= 3, proc["log"].read_text()
            assert srs.kicked == ["cidloop1"]
    finally:
        srs.stop()
