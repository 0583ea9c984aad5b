"""/metrics under the production gunicorn (several workers, multiprocess
mode): counts add up across workers, open websockets are gauged, and a dead
worker's sockets stop counting."""

from __future__ import annotations

import contextlib
import os
import re
import signal

import requests
from simple_websocket import Client, ConnectionClosed

from tests.deploy.gunicorn_server import WORKERS
from tests.metrics_helpers import value
from tests.polling import poll


def scrape(server) -> str:
    reply = requests.get(f"{server.url}/metrics", timeout=10)
    assert reply.status_code == 200
    return reply.text


def test_request_counts_add_up_across_workers(server):
    """60 requests on fresh connections (spread over both workers) are all
    counted once in the latency histogram of their endpoint."""
    before = value(
        scrape(server),
        "studio_http_request_duration_seconds_count",
        endpoint="health.healthz",
        method="GET",
    )
    for _ in range(60):
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    after = value(
        scrape(server),
        "studio_http_request_duration_seconds_count",
        endpoint="health.healthz",
        method="GET",
    )
    assert after - before == 60


def test_websocket_clients_gauge(server, make_stream):
    """Three open stream sockets read 3 (wherever they landed); closing them reads 0."""
    stream = make_stream()
    url = re.sub(r"^http", "ws", server.url) + f"/ws/streams/{stream.public_id}"
    sockets = [Client.connect(url) for _ in range(3)]
    try:
        for socket in sockets:
            assert socket.receive(timeout=10)  # the initial status: the handler runs
        gauge = lambda: value(scrape(server), "studio_websocket_clients", kind="status")  # noqa: E731
        assert poll(lambda: gauge() == 3), gauge()
    finally:
        for socket in sockets:
            with contextlib.suppress(ConnectionClosed):
                socket.close()
    assert poll(lambda: gauge() == 0), gauge()


def test_killed_workers_sockets_stop_counting(server, make_stream):
    """A worker killed with open sockets no longer adds to the gauge (child_exit
    marks it dead); the master replaces it."""
    stream = make_stream()
    url = re.sub(r"^http", "ws", server.url) + f"/ws/streams/{stream.public_id}"
    socket = Client.connect(url)
    try:
        assert socket.receive(timeout=10)
        gauge = lambda: value(scrape(server), "studio_websocket_clients", kind="status")  # noqa: E731
        assert poll(lambda: gauge() == 1)
        old = server.workers()
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        server.wait_for_workers(WORKERS, exclude=old)
        assert poll(lambda: gauge() == 0), gauge()
    finally:
        with contextlib.suppress(ConnectionClosed, OSError):
            socket.close()
