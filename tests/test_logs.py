"""Structured logs: one JSON line per event with the request id, and never a
stream key or hook token, through a publish/unpublish flow."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.logging_setup import ContextFilter, StudioJsonFormatter
from tests.conftest import load_fixture

TOKEN = "test-hook-token"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def captured_logs(app):
    """Everything logged, formatted the way production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(StudioJsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_publish_flow_logs_request_id_never_the_key(client, db, make_stream, captured_logs):
    """A refused and an accepted publish, then an unpublish: the lines carry the
    request id; neither the stream key, a wrong key, nor the hook token appears."""
    stream = make_stream()
    key = stream.stream_key
    body = {**load_fixture("on_publish.json"), "stream": stream.public_id}

    def hook(payload, request_id):
        return client.post(
            f"/hooks/srs?token={TOKEN}",
            data=json.dumps(payload),
            content_type="application/json",
            headers={"X-Request-Id": request_id},
        )

    wrong = "WrongKeyGuess0123456789"
    assert hook({**body, "param": f"?secret={wrong}"}, "req-refused-1").get_json()["code"] != 0
    reply = hook({**body, "param": f"?secret={key}"}, "req-publish-1")
    assert reply.get_json() == {"code": 0}
    assert reply.headers["X-Request-Id"] == "req-publish-1"
    unpublish = {**load_fixture("on_unpublish.json"), "stream": stream.public_id}
    assert hook(unpublish, "req-unpublish-1").status_code == 200

    text = captured_logs.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    lines = [r for r in records if stream.public_id in r["message"]]
    assert any(r["request_id"] == "req-publish-1" and "accepted" in r["message"] for r in lines), (
        text
    )
    assert any(r["request_id"] == "req-refused-1" and "refused" in r["message"] for r in lines), (
        text
    )
    assert key not in text
    assert wrong not in text
    assert TOKEN not in text


@pytest.mark.parametrize("setup", ["process", "gunicorn"])
def test_start_up_chatter_stays_out_of_the_logs(setup):
    """At INFO, importing the app's libraries logs nothing: alembic's plugin
    names (once per process, as Flask-Migrate imports it) are not events."""
    configure = {
        "process": "from studio.logging_setup import configure_process_logging as c; c('INFO')",
        "gunicorn": (
            "import logging.config, runpy; logging.config.dictConfig("
            "{'version': 1, **runpy.run_path('gunicorn.conf.py')['logconfig_dict']})"
        ),
    }[setup]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_LOG_LEVEL": "info"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{configure}; import flask_migrate; import logging; "
            "logging.getLogger('probe').info('still logging')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "still logging" in result.stderr
    assert "setup plugin" not in result.stderr
