"""deploy/entrypoint.sh run for real (outside a container, with the virtualenv
on PATH): the migrate role brings a fresh database to the current schema, the
worker role serves its metrics and registers an RQ worker on the pipeline
queue, the web role migrates and then serves, the sockets role serves
websockets, the hooks role answers the media server's callbacks."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from rq import Worker
from websockets.sync.client import connect

from devtools.process import executor, free_port, start, stop
from devtools.services import create_database
from tests.conftest import ROOT, VAR, load_fixture
from tests.metrics_helpers import value
from tests.polling import poll
from tests.stack import Tcp, drop_database

ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


@pytest.fixture()
def fresh_database(services):
    """An empty database of its own (the entrypoint migrates it)."""
    server = services["database_url"].rsplit("/", 1)[0] + "/postgres"
    name = f"studio_entry_{secrets.token_hex(4)}"
    create_database(server, name)
    yield server.rsplit("/", 1)[0] + "/" + name
    drop_database(server, name)


def role_env(services, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        DATABASE_URL=database_url,
        REDIS_URL=services["redis_url"],
        STUDIO_SECRET_KEY="entrypoint-test",
        STUDIO_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


@contextlib.contextmanager
def run_role(
    role: str, env: dict[str, str], port: int, *, timeout: float
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`entrypoint.sh <role>` until the block ends, once it listens on `port`
    (within `timeout`); yields its process and log. Then SIGTERM: it must exit
    0 within `timeout` (a clean stop), else it is killed and the test fails."""
    log_path = VAR / "logs" / f"entrypoint-{role}-{port}.log"
    argv = ["sh", str(ENTRYPOINT), role]
    role_process = executor(
        Tcp, argv, log_path, env=env, host="127.0.0.1", port=port, timeout=timeout
    )
    process = start(role_process, f"entrypoint.sh {role}").process
    try:
        yield process, log_path
    finally:
        stop(role_process)
    assert process.returncode == 0, log_path.read_text()


def schema_version(database_url: str) -> str | None:
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('alembic_version')")
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute("SELECT version_num FROM alembic_version")
        return cursor.fetchone()[0]


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


def test_migrate_role_upgrades_a_fresh_database(services, fresh_database):
    """`entrypoint.sh migrate` exits 0 with the database at the head revision."""
    assert schema_version(fresh_database) is None
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "migrate"],
        cwd=ROOT,
        env=role_env(services, fresh_database),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert schema_version(fresh_database) == head_revision()


def test_worker_role_serves_metrics_and_consumes_the_pipeline_queue(
    services, fresh_database, redis
):
    """`entrypoint.sh worker` runs an RQ worker on the uploads queue with a
    metrics port, and stops on SIGTERM."""
    from studio.media import pipeline

    port = free_port()
    env = role_env(
        services,
        fresh_database,
        STUDIO_METRICS_PORT=str(port),
        STUDIO_RQ_QUEUES=pipeline.QUEUE_NAME,
        # The bucket client must not look for Google credentials here.
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
    )
    with run_role("worker", env, port, timeout=30) as (process, log_path):
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200

        def registered() -> list[Worker]:
            assert process.poll() is None, log_path.read_text()
            return Worker.all(connection=redis)

        workers = poll(registered, timeout=30)
        assert [worker.queue_names() for worker in workers] == [[pipeline.QUEUE_NAME]]


def test_worker_role_of_a_media_node_takes_only_its_queues(services, fresh_database, redis):
    """`entrypoint.sh worker` with STUDIO_NODE_ID=node-7 (no queue list
    given) listens on node-7's own queues and nothing else."""
    from studio.media import jobs

    port = free_port()
    env = role_env(
        services,
        fresh_database,
        STUDIO_METRICS_PORT=str(port),
        STUDIO_NODE_ID="node-7",
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
    )
    env.pop("STUDIO_RQ_QUEUES", None)
    with run_role("worker", env, port, timeout=30) as (process, log_path):

        def registered() -> list[Worker]:
            assert process.poll() is None, log_path.read_text()
            return Worker.all(connection=redis)

        workers = poll(registered, timeout=30)
        assert [worker.queue_names() for worker in workers] == [list(jobs.node_queues("node-7"))]


def test_web_role_migrates_then_serves(services, fresh_database, tmp_path):
    """`entrypoint.sh web` upgrades the empty database, then gunicorn (with
    gunicorn.conf.py) answers /readyz; SIGTERM stops it cleanly."""
    port = free_port()
    metrics_dir = str(tmp_path / "metrics")
    env = role_env(
        services,
        fresh_database,
        STUDIO_BIND=f"127.0.0.1:{port}",
        STUDIO_WEB_WORKERS="1",
        PROMETHEUS_MULTIPROC_DIR=metrics_dir,
    )
    with run_role("web", env, port, timeout=60):
        reply = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert reply.status_code == 200, reply.text
        assert schema_version(fresh_database) == head_revision()
        assert (tmp_path / "metrics").is_dir()


def test_sockets_role_serves_websockets(services, db, make_stream, tmp_path):
    """`entrypoint.sh sockets` (gunicorn_sockets.conf.py, gevent workers)
    serves a stream's websocket, reading the stream from the database, and
    counts it on its /metrics (what Prometheus scrapes on sockets:8001);
    SIGTERM stops it cleanly."""
    stream = make_stream()
    port = free_port()
    env = role_env(
        services,
        services["database_url"],
        STUDIO_SOCKETS_BIND=f"127.0.0.1:{port}",
        STUDIO_SOCKET_WORKERS="1",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    with (
        run_role("sockets", env, port, timeout=60),
        connect(f"ws://127.0.0.1:{port}/ws/streams/{stream.public_id}", proxy=None) as socket,
    ):
        event = json.loads(socket.recv(timeout=20))
        assert (event["type"], event["status"]) == ("status", "created")
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert value(metrics, "studio_websocket_clients", kind="status") == 1


def test_hooks_role_answers_callbacks(services, db, make_stream, tmp_path):
    """`entrypoint.sh hooks` (gunicorn_hooks.conf.py) accepts SRS's on_publish
    for a stream with its key, which turns the stream live, and counts it on
    its /metrics (what Prometheus scrapes on hooks:8002); SIGTERM stops it
    cleanly."""
    stream = make_stream()
    port = free_port()
    env = role_env(
        services,
        services["database_url"],
        STUDIO_HOOKS_BIND=f"127.0.0.1:{port}",
        STUDIO_HOOKS_WORKERS="1",
        STUDIO_HOOK_TOKEN="entrypoint-hooks",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    body = {
        **load_fixture("on_publish.json"),
        "stream": stream.public_id,
        "param": f"?secret={stream.stream_key}",
    }
    with run_role("hooks", env, port, timeout=60):
        reply = requests.post(
            f"http://127.0.0.1:{port}/hooks/srs?token=entrypoint-hooks", json=body, timeout=60
        )
        assert reply.status_code == 200 and reply.json()["code"] == 0, reply.text
        db.session.refresh(stream)
        assert stream.status == "live"
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        labels = {"engine": "srs", "event": "on_publish", "outcome": "accepted"}
        assert value(metrics, "studio_callbacks_total", **labels) == 1
