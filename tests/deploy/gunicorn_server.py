"""The production gunicorn configuration (gunicorn.conf.py) serving the test
database and Redis, with helpers to watch its worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devtools.process import ROOT, executor, free_port, start, stop
from tests.conftest import VAR
from tests.polling import poll
from tests.stack import Tcp

# Worker processes of the `server` fixture (tests/deploy/conftest.py): more
# than one, so counts must add up across workers and a reload turns several over.
WORKERS = 2


@dataclass
class GunicornServer:
    executor: Tcp
    url: str
    log_path: Path
    metrics_dir: Path

    @property
    def process(self) -> subprocess.Popen:
        return self.executor.process

    def workers(self) -> set[int]:
        """PIDs of the master's live worker processes (from /proc)."""
        children = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.process.pid and fields[0] != "Z":
                children.add(int(entry.name))
        return children

    def wait_for_workers(self, count: int, exclude: set[int], timeout: float = 30.0) -> set[int]:
        """Wait until exactly `count` workers run and none of `exclude` is left."""

        def turned_over() -> tuple[set[int]] | None:
            current = self.workers()
            return (current,) if len(current) == count and not current & exclude else None

        found = poll(turned_over, timeout)
        if not found:
            raise AssertionError(f"workers did not turn over: {self.workers()} (old {exclude})")
        return found[0]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_gunicorn(services: dict, hook_token: str, workers: int = WORKERS, **env: str):
    """Start `gunicorn -c gunicorn.conf.py wsgi:app` on a free port; returns a
    GunicornServer once it listens. Stop it with `stop_gunicorn`."""
    port = free_port()
    metrics_dir = VAR / f"prometheus-{port}"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    environment = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "deploy-test-secret",
        "STUDIO_HOOK_TOKEN": hook_token,
        "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
        "STUDIO_SRS_API_URL": "http://127.0.0.1:9",
        "STUDIO_LOG_LEVEL": "WARNING",
        "STUDIO_BIND": f"127.0.0.1:{port}",
        "STUDIO_WEB_WORKERS": str(workers),
        "STUDIO_WEB_THREADS": "8",
        "STUDIO_GRACEFUL_TIMEOUT": "20",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **env,
    }
    log_path = VAR / "logs" / f"gunicorn-deploy-{port}.log"
    argv = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    # 30 s to start, and to stop: longer than the graceful timeout of 20.
    process = executor(
        Tcp, argv, log_path, env=environment, host="127.0.0.1", port=port, timeout=30
    )
    server = GunicornServer(process, f"http://127.0.0.1:{port}", log_path, metrics_dir)
    start(process, "gunicorn")
    try:
        server.wait_for_workers(workers, exclude=set())
    except BaseException:
        stop_gunicorn(server)
        raise
    return server


def stop_gunicorn(server: GunicornServer) -> None:
    stop(server.executor)


def probe_config(probe: str, config: str) -> str:
    """What `probe` (Python source, the config file's name in sys.argv[1])
    prints when run in a fresh interpreter from the project's root: a
    gunicorn setting applied as gunicorn applies it, away from the tests'
    own process (logging, the switch interval)."""
    result = subprocess.run(
        [sys.executable, "-c", probe, config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout
