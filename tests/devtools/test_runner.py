"""tests/stack.py's gunicorn starter returns once the app answers, not
once the port is bound: gunicorn's master binds before its workers have
imported the app, which on a busy machine takes longer than a test's first
request may wait."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
import requests

from devtools import runner
from devtools.process import StackError, free_port
from tests import stack
from tests.polling import wait_until

# Workers of this configuration import the app, then wait for `release`
# before they serve anything: a start-up as slow as the test wants it.
SLOW_WORKERS = """
import os, time
from pathlib import Path

def post_worker_init(worker):
    release = Path(os.environ["TEST_RELEASE_FILE"])
    while not release.exists():
        time.sleep(0.05)
"""


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def studio_env(services, port: int, release: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "runner-test",
        "STUDIO_HOOK_TOKEN": "runner-test",
        "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STUDIO_LOG_LEVEL": "WARNING",
        "TEST_RELEASE_FILE": str(release),
    }


def test_start_gunicorn_returns_only_once_its_workers_answer(tmp_path: Path, services) -> None:
    """The master listens while its workers are held back: start_gunicorn
    has not returned; released, it returns, and at that moment the workers
    could already answer (the release file existed), so the caller's first
    request is served at once."""
    config, release = tmp_path / "slow.conf.py", tmp_path / "release"
    config.write_text(SLOW_WORKERS)
    port = free_port()
    env = studio_env(services, port, release)
    started: dict = {}

    def start() -> None:
        try:
            started["handle"] = stack.start_gunicorn(
                env, tmp_path, port, workers=1, threads=2, config=config
            )
            started["released_before_return"] = release.exists()
        except BaseException as exc:  # reported by the assertions below
            started["error"] = exc

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    try:
        wait_until(lambda: listening(port), timeout=120, what="the master")
        assert "handle" not in started and "error" not in started, started
        release.touch()
        thread.join(timeout=runner.SERVE_TIMEOUT + 30)
        assert "error" not in started, started
        assert started["released_before_return"] is True
        reply = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert reply.status_code == 200
    finally:
        release.touch()
        thread.join(timeout=runner.SERVE_TIMEOUT + 30)
        if "handle" in started:
            started["handle"].stop()


def test_start_gunicorn_names_a_server_that_never_answers(tmp_path: Path, services) -> None:
    """A gunicorn whose app never answers is killed and reported with its
    URL, after the deadline given, instead of being handed out."""
    config = tmp_path / "slow.conf.py"
    config.write_text(SLOW_WORKERS)
    port = free_port()
    env = studio_env(services, port, tmp_path / "never")
    with pytest.raises(StackError, match=f"127.0.0.1:{port}/healthz did not answer"):
        stack.start_gunicorn(env, tmp_path, port, workers=1, config=config, start_timeout=3)
    wait_until(lambda: not listening(port), timeout=30, what="port closed")
