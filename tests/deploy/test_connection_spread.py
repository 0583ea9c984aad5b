"""Connections spread over the web tier's workers (gunicorn.conf.py's
`worker_connections`): a worker holding its threads' worth of connections
plus IDLE_KEEPALIVE takes no more, so a burst of keep-alive clients cannot
all land on one worker (one core) while the other idles."""

from __future__ import annotations

import runpy
import socket

import pytest

from devtools.process import ROOT, accepted_connections
from tests import launch
from tests.deploy.gunicorn_server import probe_config, start_gunicorn, stop_gunicorn
from tests.polling import poll

THREADS = 2
IDLE_KEEPALIVE = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["IDLE_KEEPALIVE"]
CAP = THREADS + IDLE_KEEPALIVE


@pytest.fixture()
def small_server(app, services, db):
    server = start_gunicorn(
        services, app.config["HOOK_TOKEN"], workers=2, STUDIO_WEB_THREADS=str(THREADS)
    )
    yield server
    stop_gunicorn(server)


def held(server, port: int) -> dict[int, int]:
    """Established connections to `port` that each worker has accepted."""
    workers = server.workers()
    return {pid: n for pid, n in accepted_connections(port).items() if pid in workers}


def test_a_burst_of_connections_is_shared_by_the_workers(small_server):
    """Twice a worker's cap of connections, opened at once: each worker
    accepts exactly its cap (without it, the first to wake takes most), and
    every connection's request is answered."""
    port = int(small_server.url.rsplit(":", 1)[1])
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(2 * CAP)]
    try:
        spread = poll(
            lambda: (
                (counts,)
                if sorted((counts := held(small_server, port)).values()) == [CAP, CAP]
                else None
            ),
            timeout=15,
        )
        assert spread, f"connections per worker: {held(small_server, port)}"
        for sock in sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: studio\r\n\r\n")
        for sock in sockets:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in sockets:
            sock.close()


CAP_PROBE = """
import runpy, sys
config = runpy.run_path(sys.argv[1])
print(config["threads"], config["worker_connections"])
"""


@pytest.mark.parametrize(
    ("config", "threads_variable"),
    [
        ("gunicorn.conf.py", "STUDIO_WEB_THREADS"),
        ("gunicorn_hooks.conf.py", "STUDIO_HOOKS_THREADS"),
    ],
)
def test_both_gthread_tiers_cap_a_worker_at_its_threads_plus_idle_ones(
    config, threads_variable, monkeypatch
):
    """The web and callback tiers: a worker's cap follows its thread count
    as the operator sets it."""
    monkeypatch.setenv(threads_variable, "3")
    assert probe_config(CAP_PROBE, config).split() == ["3", str(3 + IDLE_KEEPALIVE)]


def test_a_test_stack_with_its_own_thread_count_keeps_the_rule():
    """A stack that asks for more threads than the file's (benchmarks,
    tests) gets the cap for its count, not the file's: fewer connections
    than threads would also turn keep-alive off."""
    argv = launch.gunicorn_argv(8000, threads=32)
    assert argv[argv.index("--worker-connections") + 1] == str(32 + IDLE_KEEPALIVE)
    sockets = launch.gunicorn_argv(8000, tier="sockets", threads=4)
    assert "--worker-connections" not in sockets
