"""Redis for development and tests: REDIS_URL, or a private server run by
pytest-redis's executor (redis-server under mirakuru)."""

from __future__ import annotations

import os
import shutil
import tempfile
from hashlib import sha256
from pathlib import Path

from pytest_redis.executor import RedisExecutor

from devtools.process import Service, StackError, free_port, start


def ensure_redis(var_dir: Path) -> Service:
    """REDIS_URL if set, else a private server (RQ queues, rate limits and
    pub/sub all live in db 0: a shared server would mix checkouts)."""
    url = os.environ.get("REDIS_URL")
    return Service(name="redis", url=url) if url else start_redis(var_dir)


def start_redis(var_dir: Path, port: int | None = None) -> Service:
    """A private, non-persistent redis-server on 127.0.0.1 (a free port)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise StackError("redis-server not found: run devtools/bootstrap.sh")
    port, data_dir = port or free_port(), (var_dir / "redis").resolve()
    if len(str(data_dir)) > 80:  # the Unix socket path must stay short
        digest = sha256(str(data_dir).encode()).hexdigest()[:10]
        data_dir = Path(tempfile.gettempdir()) / f"studio-redis-{digest}"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = RedisExecutor(
        executable,
        databases=16,
        redis_timeout=0,  # never close idle clients (RQ, connection pools)
        loglevel="notice",
        host="127.0.0.1",
        port=port,
        startup_timeout=30,
        datadir=data_dir,
    )
    server.log_path = data_dir / f"redis-server.{port}.log"
    start(server, "redis-server")
    url = f"redis://127.0.0.1:{port}/0"
    return Service(name="redis", url=url, log_path=server.log_path, executor=server)
