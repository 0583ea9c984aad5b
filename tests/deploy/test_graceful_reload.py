"""Reloading the web tier (SIGHUP to the gunicorn master, as a deploy does)
while SRS keeps calling back: every callback is answered correctly.

The server runs the production gunicorn.conf.py (gthread workers, graceful
timeout, preload off) against the test PostgreSQL and Redis. Each load thread
plays one SRS publisher: on_publish then on_unpublish on its own stream, a
new connection per callback as SRS's HTTP client makes them.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import requests
from sqlalchemy import func, select

from studio.models import Broadcast, Stream
from tests.conftest import load_fixture
from tests.deploy.gunicorn_server import WORKERS
from tests.metrics_helpers import value

THREADS = 6


class Publisher(threading.Thread):
    """Publish/unpublish pairs on one stream until told to stop; records every mistake."""

    def __init__(self, url: str, stream: str, key: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.url, self.stream, self.key, self.stop = url, stream, key, stop
        self.failures: list[str] = []
        # (sent, answered) monotonic times of each correctly answered callback
        self.answered: list[tuple[float, float]] = []
        self.publishes = 0

    def callback(self, action: str, client_id: str) -> None:
        body = load_fixture(f"{action}.json")
        body.update(stream=self.stream, client_id=client_id, param=f"?secret={self.key}")
        sent = time.monotonic()
        try:
            reply = requests.post(
                self.url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json", "Connection": "close"},
                timeout=30,  # SRS's own hook timeout
            )
        except requests.RequestException as exc:
            self.failures.append(f"{action} {client_id}: {exc!r}")
            return
        if reply.status_code != 200 or reply.json() != {"code": 0}:
            self.failures.append(f"{action} {client_id}: {reply.status_code} {reply.text[:200]}")
            return
        self.answered.append((sent, time.monotonic()))

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            client_id = f"{self.stream[-4:]}{n:06d}"
            self.callback("on_publish", client_id)
            self.publishes += 1
            self.callback("on_unpublish", client_id)


def make_streams(db, make_stream, count: int) -> list[Stream]:
    streams = []
    for n in range(count):
        stream = make_stream(title=f"load {n}")
        streams.append(stream)
    db.session.commit()
    return streams


def test_callbacks_survive_two_reloads(server, db, make_stream):
    """Two SIGHUPs under a steady callback load: zero failed callbacks, every
    broadcast opened is closed, and the metrics count every callback."""
    streams = make_streams(db, make_stream, THREADS)
    stop = threading.Event()
    url = f"{server.url}/hooks/srs?token=test-hook-token"
    threads = [Publisher(url, s.public_id, s.stream_key, stop) for s in streams]
    for thread in threads:
        thread.start()
    reload_windows = []
    try:
        time.sleep(1.0)  # steady load before the first reload
        for _ in range(2):
            old = server.workers()
            started = time.monotonic()
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_workers(WORKERS, exclude=old)
            reload_windows.append((started, time.monotonic()))
            time.sleep(1.0)  # load on the new generation
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    failures = [f for thread in threads for f in thread.failures]
    assert failures == [], failures[:10]
    answered = [pair for thread in threads for pair in thread.answered]
    for begin, end in reload_windows:
        # In flight while the old workers stopped and the new ones started.
        overlapping = [1 for sent, done in answered if sent <= end and done >= begin]
        assert overlapping, "no callback was in flight while workers turned over"

    publishes = sum(thread.publishes for thread in threads)
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Broadcast.id))) == publishes
    assert db.session.scalar(select(func.count()).where(Broadcast.ended_at.is_(None))) == 0
    assert set(db.session.scalars(select(Stream.status))) == {"ended"}

    # Counters of the workers that were replaced still count (multiprocess mode).
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    labels = {"engine": "srs", "outcome": "accepted"}
    assert value(metrics, "studio_callbacks_total", event="on_publish", **labels) == publishes
    assert value(metrics, "studio_callbacks_total", event="on_unpublish", **labels) == publishes
    assert "Traceback" not in server.log()
