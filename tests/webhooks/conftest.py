"""Fixtures for webhooks: a real HTTP receiver on a local port, an RQ worker
run in burst mode on the webhooks queue, and the scheduled retries of RQ
released on demand (the clock of a day of backoff, moved forward)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from studio.media import jobs
from tests.api.helpers import Api

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server: records every request, answers with the next
    scripted status (then `default`); while `hold` is set it keeps each
    request waiting until `release` is set."""

    url: str
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    redirect_to: str = ""
    answered: int = 0


@pytest.fixture()
def receiver():
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, dict(self.headers), body))
            if state.hold.is_set():
                state.holding.set()
                state.release.wait(30)
            status = state.statuses.pop(0) if state.statuses else state.default
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.redirect_to or "/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            state.answered += 1

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture()
def webhook_app(app, redis, monkeypatch):
    """The app with loopback allowed as a webhook address (the receiver is
    local) and a short delivery timeout."""
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOWED_NETWORKS", ["127.0.0.0/8"])
    monkeypatch.setitem(app.config, "WEBHOOK_TIMEOUT", 1.0)
    return app


def queue(redis) -> Queue:
    return Queue(jobs.WEBHOOKS, connection=redis, serializer=JSONSerializer)


def run_worker(redis) -> None:
    """A real RQ worker on the webhooks queue until the queue is empty."""
    SimpleWorker([queue(redis)], connection=redis, serializer=JSONSerializer).work(burst=True)


def release_retries(redis) -> list[float]:
    """Move every scheduled retry to its queue now (as RQ's scheduler would
    once its time came); returns each one's delay from now in seconds."""
    registry = ScheduledJobRegistry(queue=queue(redis))
    delays = []
    now = datetime.now(UTC)
    for job_id in registry.get_job_ids():
        delays.append((registry.get_scheduled_time(job_id) - now).total_seconds())
        registry.remove(job_id)
        job = queue(redis).fetch_job(job_id)
        queue(redis).enqueue_job(job)
    return delays


def documented_verify():
    """The `verify` function of the Python snippet in docs/webhooks.md."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert snippet, "docs/webhooks.md has no Python snippet"
    namespace: dict = {}
    exec(compile(snippet.group(1), "docs/webhooks.md", "exec"), namespace)  # noqa: S102
    return namespace["verify"]


@pytest.fixture()
def creator_api(client, make_user, make_token):
    """(user, Api) of a new creator."""

    def factory():
        user = make_user()
        return user, Api(client, make_token(user))

    return factory
