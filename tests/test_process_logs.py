"""Every process writes structured logs: one JSON object per line with a
`severity` Google Cloud Logging understands, the request id inside a web
request and the job id inside an RQ job (real gunicorn and RQ worker,
started by deploy/entrypoint.sh as in production)."""

from __future__ import annotations

import json

import requests
from rq import Queue
from rq.serializers import JSONSerializer
from websockets.sync.client import connect

from devtools.process import free_port
from tests.conftest import load_fixture
from tests.deploy.test_entrypoint import fresh_database, role_env, run_role  # noqa: F401
from tests.polling import poll

SEVERITIES = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def json_lines(text: str) -> list[dict]:
    """Every non-empty line as JSON (a line that is not JSON fails the test)."""
    records = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"not a JSON log line: {line!r}") from exc
    return records


def assert_structured(records: list[dict]) -> None:
    assert records
    for record in records:
        assert record["severity"] in SEVERITIES, record
        assert record["message"] is not None and record["time"], record
        assert record["logger"], record


def test_web_process_logs_json_with_the_request_id(services, fresh_database):  # noqa: F811
    """gunicorn's own lines and the app's are JSON; a hook's line carries the
    caller's X-Request-Id."""
    port = free_port()
    env = role_env(
        services,
        fresh_database,
        STUDIO_BIND=f"127.0.0.1:{port}",
        STUDIO_WEB_WORKERS="1",
        STUDIO_HOOK_TOKEN="log-test-token",
    )
    env["STUDIO_LOG_LEVEL"] = "INFO"
    body = {**load_fixture("on_publish.json"), "stream": "nosuchstream0001"}
    with run_role("web", env, port, timeout=60) as (_process, log_path):
        reply = requests.post(
            f"http://127.0.0.1:{port}/hooks/srs?token=log-test-token",
            json=body,
            headers={"X-Request-Id": "req-log-test-1"},
            timeout=10,
        )
        assert reply.status_code == 200
    records = json_lines(log_path.read_text())
    assert_structured(records)
    hook_lines = [r for r in records if r.get("request_id") == "req-log-test-1"]
    assert any("nosuchstream0001" in r["message"] for r in hook_lines), records
    assert any(r["logger"].startswith("gunicorn") for r in records), records
    assert "log-test-token" not in log_path.read_text()


def test_worker_process_logs_json_with_the_job_id(services, fresh_database, redis):  # noqa: F811
    """The RQ worker's own lines and a job's lines are JSON; the job's line
    carries its job id."""
    port = free_port()
    env = role_env(
        services,
        fresh_database,
        STUDIO_METRICS_PORT=str(port),
        STUDIO_RQ_QUEUES="logtest",
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
    )
    queue = Queue("logtest", connection=redis, serializer=JSONSerializer)
    job = queue.enqueue("tests.log_jobs.say", "hello-logs")
    with run_role("worker", env, port, timeout=30) as (process, log_path):

        def finished() -> bool:
            assert process.poll() is None, log_path.read_text()
            return job.get_status(refresh=True) == "finished"

        poll(finished, timeout=60, interval=0.1)
        assert job.get_status() == "finished", log_path.read_text()
    records = json_lines(log_path.read_text())
    assert_structured(records)
    said = [r for r in records if r["message"] == "job says hello-logs"]
    assert said and said[0]["job_id"] == job.id, records
    assert all("request_id" not in r for r in records)


def test_socket_tier_logs_json_and_loads_no_flask_before_gevent(
    services, db, make_stream, tmp_path
):
    """The gevent socket tier's lines (gunicorn's and the app's) are JSON too,
    and its master formats them without importing the app, so gevent patches
    the standard library before anything else uses it (no MonkeyPatchWarning)."""
    stream = make_stream()
    port = free_port()
    env = role_env(
        services,
        services["database_url"],
        STUDIO_SOCKETS_BIND=f"127.0.0.1:{port}",
        STUDIO_SOCKET_WORKERS="1",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    env["STUDIO_LOG_LEVEL"] = "INFO"
    url = f"ws://127.0.0.1:{port}/ws/streams/{stream.public_id}"
    with (
        run_role("sockets", env, port, timeout=60) as (_, log_path),
        connect(url, proxy=None) as socket,
    ):
        assert json.loads(socket.recv(timeout=20))["type"] == "status"
    text = log_path.read_text()
    assert "MonkeyPatchWarning" not in text
    records = json_lines(text)
    assert_structured(records)
    assert any(r["logger"] == "gunicorn.error" and "gevent" in r["message"] for r in records)
