"""The `reconciler` process rides out Redis and PostgreSQL outages: it logs,
backs off, stays alive, and reconciles again once the server is back.

Each test runs its own Redis or PostgreSQL (never the machine's shared one),
stops it under the running process and starts it again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import requests
from flask_migrate import upgrade

from devtools import services as pg
from devtools.process import executor, free_port, start, stop
from devtools.services import start_postgres, start_redis
from studio import config as studio_config
from studio import create_app
from tests import launch
from tests.conftest import VAR
from tests.metrics_helpers import value
from tests.polling import wait_until
from tests.srs_api_double import SrsApiTestDouble
from tests.stack import Tcp


@contextlib.contextmanager
def reconciler(database_url: str, redis_url: str, srs: SrsApiTestDouble) -> Iterator[dict]:
    """The reconciler role as a process; yields {"process", "metrics", "log"}."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STUDIO_SECRET_KEY": "reconciler-outage-test",
        "STUDIO_MEDIA_ENGINE": "srs",
        "STUDIO_SRS_API_URL": srs.url,
        "STUDIO_RECONCILE_INTERVAL": "0.2",
        "STUDIO_RECONCILE_GRACE_SECONDS": "0.3",
        "STUDIO_RECONCILE_BACKOFF_MAX": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = VAR / "logs" / f"reconciler-outage-{port}.log"
    argv = launch.reconciler_argv(port)
    role = executor(Tcp, argv, log_path, env=env, host="127.0.0.1", port=port, timeout=30)
    process = start(role, "reconciler").process
    try:
        yield {"process": process, "metrics": f"http://127.0.0.1:{port}/metrics", "log": log_path}
    finally:
        stop(role)
    assert process.returncode == 0, log_path.read_text()


def failed_passes(proc: dict) -> float:
    text = requests.get(proc["metrics"], timeout=5).text
    return value(text, "studio_reconcile_runs_total", outcome="error")


def kicks(srs: SrsApiTestDouble, client_id: str, proc: dict) -> bool:
    """True once the reconciler dropped `client_id`; fails at once if the process died."""
    assert proc["process"].poll() is None, proc["log"].read_text()
    return client_id in srs.kicked


def test_reconciler_survives_a_redis_restart(app, services):
    """Redis goes away under the running reconciler: the process stays up,
    counts failed passes, and drops an unknown publisher once Redis is back."""
    redis_server = start_redis(VAR)
    redis_port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    srs = SrsApiTestDouble()
    try:
        with reconciler(services["database_url"], redis_server.url, srs) as proc:
            srs.publish("intruder1", "cid-before")
            wait_until(lambda: kicks(srs, "cid-before", proc), 30, "a pass before the outage")

            redis_server.stop()
            wait_until(lambda: failed_passes(proc) >= 3, 30, "failed passes during the outage")
            assert proc["process"].poll() is None, proc["log"].read_text()

            redis_server = start_redis(VAR, port=redis_port)
            srs.publish("intruder2", "cid-after")
            wait_until(lambda: kicks(srs, "cid-after", proc), 30, "a pass after Redis came back")
        assert "reconcile passes resumed" in proc["log"].read_text()
    finally:
        redis_server.stop()
        srs.stop()


def test_reconciler_survives_a_postgres_restart(services):
    """PostgreSQL goes away under the running reconciler: the process stays
    up, and passes (which read the open broadcasts) resume once it is back."""
    var_dir = VAR / f"reconcile-pg-{os.getpid()}"
    home: Path = pg._pg_home(var_dir)
    database = start_postgres(var_dir, database="studio")
    pg_port = int(database.server_url.rsplit(":", 1)[1].split("/")[0])
    srs = SrsApiTestDouble()
    try:
        schema_app = create_app(
            studio_config.testing(
                {
                    "SQLALCHEMY_DATABASE_URI": studio_config.sqlalchemy_url(database.url),
                    "REDIS_URL": services["redis_url"],
                }
            )
        )
        with schema_app.app_context():
            upgrade()
            from studio.extensions import db

            db.engine.dispose()  # no connection of ours may hold the server open
        with reconciler(database.url, services["redis_url"], srs) as proc:
            srs.publish("intruder3", "cid-pg-before")
            wait_until(lambda: kicks(srs, "cid-pg-before", proc), 30, "a pass before the outage")

            database.stop()
            wait_until(lambda: failed_passes(proc) >= 3, 30, "failed passes during the outage")
            assert proc["process"].poll() is None, proc["log"].read_text()

            database = start_postgres(var_dir, database="studio", port=pg_port)
            srs.publish("intruder4", "cid-pg-after")
            wait_until(lambda: kicks(srs, "cid-pg-after", proc), 30, "a pass after PostgreSQL")
    finally:
        database.stop()
        srs.stop()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(var_dir, ignore_errors=True)
