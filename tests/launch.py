"""The studio's processes' command lines for the test stacks and benchmarks
(`make dev` runs deploy/entrypoint.sh's roles instead): tests choose a
tier's worker count, an RQ pool's size and its queues."""

from __future__ import annotations

import runpy
import subprocess
import sys

from devtools.process import ROOT, StackError

DEFAULT_WORKERS = 4  # upload worker processes, measured in docs/benchmarks.md
# The gunicorn tiers: their config file (as in production), and one worker here
# for the callback and socket tiers.
TIERS = {
    "web": ("gunicorn.conf.py", {}),
    "hooks": ("gunicorn_hooks.conf.py", {"workers": 1}),
    "sockets": ("gunicorn_sockets.conf.py", {"workers": 1}),
}


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def migrate(env: dict[str, str], timeout: float = 120) -> None:
    """`flask db upgrade`, or a StackError with its output."""
    argv = python("flask", "--app", "studio", "db", "upgrade")
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise StackError(f"flask db upgrade failed:\n{result.stdout}{result.stderr}")


def connection_cap(threads: int) -> int:
    """A gthread worker's `worker_connections` for `threads` threads, by
    gunicorn.conf.py's rule: its threads plus IDLE_KEEPALIVE idle ones."""
    return threads + runpy.run_path(str(ROOT / "gunicorn.conf.py"))["IDLE_KEEPALIVE"]


def gunicorn_argv(port: int, *, tier: str = "web", **options: object) -> list[str]:
    """gunicorn `wsgi:app` on 127.0.0.1:port with the tier's config file (or
    `config`); `options` win over TIERS' and the file's."""
    file, defaults = TIERS[tier]
    config = options.pop("config", None) or ROOT / file
    if tier != "sockets" and "threads" in options and "worker_connections" not in options:
        # A thread count given here keeps the gthread tiers' cap rule
        # instead of the file's count.
        options["worker_connections"] = connection_cap(int(options["threads"]))
    argv = python("gunicorn", "-c", str(config), "wsgi:app", "--bind", f"127.0.0.1:{port}")
    for key, value in {**defaults, "graceful_timeout": 5, **options}.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def workers_argv(env: dict[str, str], count: int = DEFAULT_WORKERS, queues=None) -> list[str]:
    """`rq worker-pool` of `count` UploadWorker (jobs run in the worker process,
    which keeps its clients) on `queues`, by default those of `env`'s node."""
    argv = python("rq.cli", "worker-pool", "--num-workers", str(count), "--serializer", "json")
    argv += ["--worker-class", "workers.rq_worker.UploadWorker", "--url", env["REDIS_URL"]]
    return [*argv, "--logging-level", "WARNING", *(queues or node_queues(env))]


def reconciler_argv(metrics_port: int) -> list[str]:
    """The entrypoint's `reconciler` role, metrics on their own port."""
    exporter = ["--port", str(metrics_port), "--addr", "127.0.0.1"]
    return python("studio.metrics_exporter", *exporter, "workers.reconcile", "--loop")


def node_queues(env: dict[str, str]) -> tuple[str, ...]:
    """The queues of the media node that `env` serves (STUDIO_NODE_ID)."""
    from studio.media.jobs import DEFAULT_NODE, node_queues

    return node_queues(env.get("STUDIO_NODE_ID") or DEFAULT_NODE)


def watcher_argv(env: dict[str, str]) -> list[str]:
    """The HLS watcher; a media node's names the node on its command line."""
    node = env.get("STUDIO_NODE_ID")
    return python("workers.watcher", *(["--node", node] if node else []))
