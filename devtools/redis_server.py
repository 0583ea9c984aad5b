"""Redis for devtools/stack.py: the machine's server or a private one.

Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from devtools.process import (
    Service,
    _require,
    free_port,
    recall,
    spawn,
    terminate,
    wait_for_port,
)


def ensure_redis(var_dir: Path, *, use_system: bool = True) -> Service:
    """Redis: REDIS_URL if set; else 127.0.0.1:6379 (unless `use_system` is
    false); else a private server, reusing one an earlier command line run
    left running."""
    url = os.environ.get("REDIS_URL")
    if url:
        return Service(name="redis", url=url)
    if use_system and redis_ping("127.0.0.1", 6379):
        return Service(name="redis", url="redis://127.0.0.1:6379/0")
    state = recall(var_dir, "redis")
    if state is not None:
        return Service(name="redis", url=state["url"])
    return start_redis(var_dir)


def start_redis(var_dir: Path, port: int | None = None) -> Service:
    """Always start a private, non-persistent redis-server on a free port."""
    started = time.monotonic()
    port = port or free_port()
    data_dir = var_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        _require("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir.resolve()),
    ]
    process, log_path = spawn(f"redis-{port}", argv, var_dir)
    try:
        wait_for_port("127.0.0.1", port, process=process, log_path=log_path)
    except BaseException:
        terminate(process, signal.SIGKILL)
        raise
    return Service(
        name="redis",
        url=f"redis://127.0.0.1:{port}/0",
        log_path=log_path,
        process=process,
        started_in=time.monotonic() - started,
    )


def redis_ping(host: str, port: int) -> bool:
    """True if a Redis server on host:port answers PING."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
