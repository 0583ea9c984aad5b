"""Start the studio's own processes: migrations, gunicorn, the RQ workers and
the HLS watcher. Used by `make dev` (devtools/dev.py) and the end-to-end
fixture (tests/e2e/conftest.py).

Every starter takes the environment the process needs (`studio_env` builds
it from the services of devtools/stack.py) and returns a `Handle` whose
`.stop()` ends it (SIGTERM, then SIGKILL of its process group) and whose
`.kill()` ends it abruptly, as a crash would. Logs go to var_dir/logs/.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devtools import stack

ROOT = stack.ROOT
# Seconds a gunicorn may take until its app answers: importing the app in
# each worker takes well over 10 s when the machine is busy.
SERVE_TIMEOUT = 120.0
# The liveness route (studio/health.py): no database, no Redis.
LIVENESS_PATH = "/healthz"
# Upload worker processes (SimpleWorker: jobs run in the worker process, which
# keeps its storage client and database pool). Measured in docs/benchmarks.md.
DEFAULT_WORKERS = 4


@dataclass(kw_only=True)
class Handle:
    """A process started by this module."""

    name: str
    argv: list[str]
    env: dict[str, str]
    var_dir: Path
    log_path: Path | None = None
    url: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    stop_timeout: float = 10.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Graceful stop (SIGTERM: a worker finishes its current job)."""
        if self.process is not None:
            stack.terminate(self.process, signal.SIGTERM, self.stop_timeout)
            self._reap_group()
            self.process = None

    def kill(self) -> None:
        """Abrupt stop of the whole process group, as a crash or OOM kill."""
        if self.process is not None:
            self._reap_group(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def _reap_group(self, sig: int = signal.SIGKILL) -> None:
        # Children (gunicorn or pool workers) share the leader's group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def start(self) -> Handle:
        """Start it again after stop()/kill(): same command, environment, log."""
        if not self.alive():
            _popen(self)
        return self

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def studio_env(
    *,
    database_url: str,
    redis_url: str,
    gcs: stack.GcsService,
    nginx: stack.NginxService | None,
    public_url: str,
    secret_key: str,
    hook_token: str,
    engine: str = "nginx-rtmp",
    hls_dir: Path | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment every studio process gets (see README's table)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STORAGE_EMULATOR_HOST": gcs.url,
        "STUDIO_GCS_BUCKET": gcs.bucket,
        "STUDIO_SECRET_KEY": secret_key,
        "STUDIO_HOOK_TOKEN": hook_token,
        "STUDIO_PUBLIC_URL": public_url,
        "STUDIO_MEDIA_ENGINE": engine,
        # The development signed-cookie key of private streams (the edge asks
        # the studio to check it): derived from the secret key, so it stays
        # the same across restarts; the environment's own key wins.
        "STUDIO_CDN_SIGNING_KEY_NAME": os.environ.get("STUDIO_CDN_SIGNING_KEY_NAME") or "dev-key",
        "STUDIO_CDN_SIGNING_KEY": os.environ.get("STUDIO_CDN_SIGNING_KEY")
        or dev_signing_key(secret_key),
    }
    if nginx is not None:
        env.update(
            STUDIO_CDN_URL=nginx.edge_url,
            STUDIO_RTMP_URL=nginx.rtmp_url,
            STUDIO_NGINX_CONTROL_URL=nginx.control_url,
            STUDIO_HLS_DIR=str(hls_dir or nginx.hls_dir),
            # The playlists' target duration and Cache-Control follow nginx's.
            STUDIO_HLS_FRAGMENT=str(nginx.hls_fragment),
        )
        if nginx.tls_url and not os.environ.get("STUDIO_WEBRTC_ORIGIN"):
            # WebRTC URLs handed out must name the HTTPS site: only there does
            # nginx pass /rtc/v1/ to SRS (gunicorn's plain port answers 404).
            env["STUDIO_WEBRTC_ORIGIN"] = nginx.tls_url
    elif hls_dir is not None:
        env["STUDIO_HLS_DIR"] = str(hls_dir)
    env.update(extra or {})
    return env


def dev_signing_key(secret_key: str) -> str:
    """A 16-byte base64url key (Cloud CDN's form) derived from `secret_key`."""
    digest = hashlib.sha256(b"studio-dev-cdn-key:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode()


def _spawn(name: str, argv: list[str], env: dict[str, str], var_dir: Path) -> Handle:
    log_dir = var_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    handle = Handle(name=name, argv=argv, env=env, var_dir=var_dir, log_path=log_path)
    _popen(handle)
    return handle


def _popen(handle: Handle) -> None:
    with open(handle.log_path, "ab") as log:
        handle.process = subprocess.Popen(
            handle.argv,
            cwd=ROOT,
            env=handle.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # Ctrl-C in a terminal reaches only the parent
        )


def migrate(env: dict[str, str], var_dir: Path, timeout: float = 120) -> None:
    """`flask --app studio db upgrade`; raises StackError with its output on failure."""
    argv = [sys.executable, "-m", "flask", "--app", "studio", "db", "upgrade"]
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise stack.StackError(f"migrations failed:\n{result.stdout}{result.stderr}")


def start_gunicorn(
    env: dict[str, str],
    var_dir: Path,
    port: int,
    *,
    workers: int = 2,
    threads: int = 16,
    graceful_timeout: int = 5,
    config: Path | None = None,
    name: str | None = None,
    start_timeout: float = SERVE_TIMEOUT,
) -> Handle:
    """The web tier: gunicorn `wsgi:app` on 127.0.0.1:port with gthread
    workers (pages, API; websockets go to `start_sockets`, the media
    servers' callbacks to `start_hooks`, though this tier serves them too).
    Waits until the app answers.

    With `config` (gunicorn.conf.py), its server hooks run too; the options
    given here override the file's. `.stop()` waits a little longer than the
    graceful timeout, so workers may finish what they hold."""
    argv = gunicorn_argv(
        port, config=config, workers=workers, threads=threads, graceful_timeout=graceful_timeout
    )
    return _serve(
        name or f"gunicorn-{port}", argv, env, var_dir, port, graceful_timeout, start_timeout
    )


def start_hooks(
    env: dict[str, str],
    var_dir: Path,
    port: int,
    *,
    workers: int = 1,
    threads: int = 8,
    graceful_timeout: int = 5,
    name: str | None = None,
    start_timeout: float = SERVE_TIMEOUT,
) -> Handle:
    """The callback tier: gunicorn `wsgi:app` with gunicorn_hooks.conf.py on
    127.0.0.1:port, where the media servers' hook URLs point (`hook_url`),
    so their callbacks never wait behind pages. Waits until the app answers."""
    argv = hooks_argv(port, workers=workers, threads=threads, graceful_timeout=graceful_timeout)
    return _serve(
        name or f"hooks-{port}", argv, env, var_dir, port, graceful_timeout, start_timeout
    )


def hook_url(hooks_port: int, engine: str, token: str) -> str:
    """The callback URL a media engine is given: the callback tier on
    127.0.0.1:hooks_port, the route of `engine` ("srs" or "nginx-rtmp")."""
    return f"http://127.0.0.1:{hooks_port}/hooks/{engine}?token={token}"


def _serve(
    name: str,
    argv: list[str],
    env: dict[str, str],
    var_dir: Path,
    port: int,
    graceful_timeout: int,
    start_timeout: float,
) -> Handle:
    """Start a gunicorn and wait until its app answers the liveness route
    (a bound port only means the master listens; its workers may still be
    importing the app). A gunicorn that never answers is killed."""
    handle = _spawn(name, argv, env, var_dir)
    handle.url = f"http://127.0.0.1:{port}"
    handle.stop_timeout = graceful_timeout + 5.0
    try:
        stack.wait_for_http(
            handle.url + LIVENESS_PATH, start_timeout, handle.process, handle.log_path
        )
    except BaseException:
        handle.kill()
        raise
    return handle


def start_sockets(
    env: dict[str, str],
    var_dir: Path,
    port: int,
    *,
    workers: int = 1,
    connections: int = 5000,
    graceful_timeout: int = 5,
    name: str | None = None,
    start_timeout: float = SERVE_TIMEOUT,
) -> Handle:
    """The socket tier: gunicorn `wsgi:app` with gunicorn_sockets.conf.py
    (gevent workers, a greenlet per websocket) on 127.0.0.1:port. nginx
    sends it the `/ws/` routes. Waits until the app answers."""
    argv = sockets_argv(
        port, workers=workers, connections=connections, graceful_timeout=graceful_timeout
    )
    return _serve(
        name or f"sockets-{port}", argv, env, var_dir, port, graceful_timeout, start_timeout
    )


def start_workers(
    env: dict[str, str],
    var_dir: Path,
    count: int = DEFAULT_WORKERS,
    *,
    name: str = "rq-workers",
) -> Handle:
    """`rq worker-pool` of `count` UploadWorker (SimpleWorker) processes on
    the uploads queue, then the replays queue, then the webhooks queue.

    SimpleWorker runs jobs in the worker process itself: the storage client,
    database pool and Flask app are built once per process, not per job.
    """
    handle = _spawn(name, workers_argv(env["REDIS_URL"], count), env, var_dir)
    handle.stop_timeout = 20.0  # let a running upload finish
    return handle


def wait_for_workers(env: dict[str, str], count: int, timeout: float = 60) -> None:
    """Until `count` upload workers are registered in Redis (they register
    after warming up: app, database, storage client)."""
    import time

    import redis
    from rq import Worker

    from studio.media.pipeline import QUEUE_NAME

    connection = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while True:
        ready = [w for w in Worker.all(connection=connection) if QUEUE_NAME in w.queue_names()]
        if len(ready) >= count:
            return
        if time.monotonic() > deadline:
            raise stack.StackError(f"{len(ready)} of {count} upload workers ready after {timeout}s")
        time.sleep(0.1)


def start_watcher(env: dict[str, str], var_dir: Path, *, name: str = "watcher") -> Handle:
    """The HLS directory watcher + periodic sweep (workers/watcher.py)."""
    return _spawn(name, watcher_argv(), env, var_dir)


# --------------------------------------------------------------------------
# Command lines (also run under devtools/supervise.py by `make dev`)


def _gunicorn(
    config: Path | None, port: int, options: list[str], control_socket: Path | None
) -> list[str]:
    """gunicorn `wsgi:app` on 127.0.0.1:port with `config` and `options`
    (which override the file's). `control_socket` moves gunicorn's control
    socket from its default, ~/.gunicorn/gunicorn.ctl, which every gunicorn
    of the user would share."""
    configured = ["-c", str(config)] if config else []
    control = ["--control-socket", str(control_socket)] if control_socket else []
    bind = ["--bind", f"127.0.0.1:{port}"]
    return [sys.executable, "-m", "gunicorn", *configured, "wsgi:app", *bind, *options, *control]


def sockets_argv(
    port: int,
    *,
    workers: int = 1,
    connections: int = 5000,
    graceful_timeout: int = 5,
    control_socket: Path | None = None,
) -> list[str]:
    """The socket tier's gunicorn (gunicorn_sockets.conf.py) on 127.0.0.1:port."""
    options = ["--workers", str(workers), "--worker-connections", str(connections)]
    options += ["--graceful-timeout", str(graceful_timeout)]
    return _gunicorn(ROOT / "gunicorn_sockets.conf.py", port, options, control_socket)


def hooks_argv(
    port: int,
    *,
    workers: int = 1,
    threads: int = 8,
    graceful_timeout: int = 5,
    control_socket: Path | None = None,
) -> list[str]:
    """The callback tier's gunicorn (gunicorn_hooks.conf.py) on 127.0.0.1:port."""
    options = ["--workers", str(workers), "--threads", str(threads)]
    options += ["--graceful-timeout", str(graceful_timeout)]
    return _gunicorn(ROOT / "gunicorn_hooks.conf.py", port, options, control_socket)


def gunicorn_argv(
    port: int,
    *,
    config: Path | None = None,
    workers: int = 2,
    threads: int = 16,
    graceful_timeout: int = 5,
    control_socket: Path | None = None,
) -> list[str]:
    """The web tier: gthread workers on 127.0.0.1:port; with `config`
    (gunicorn.conf.py) its server hooks run too."""
    options = ["--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads)]
    options += ["--graceful-timeout", str(graceful_timeout), "--timeout", "60"]
    return _gunicorn(config, port, options, control_socket)


def workers_argv(redis_url: str, count: int = DEFAULT_WORKERS) -> list[str]:
    """`rq worker-pool` of `count` UploadWorker processes (see start_workers)."""
    from studio.media.pipeline import QUEUES

    return [
        sys.executable,
        "-m",
        "rq.cli",
        "worker-pool",
        "--num-workers",
        str(count),
        "--worker-class",
        "workers.rq_worker.UploadWorker",
        "--serializer",
        "json",
        "--url",
        redis_url,
        "--logging-level",
        "WARNING",
        *QUEUES,
    ]


def watcher_argv() -> list[str]:
    """The HLS directory watcher + periodic sweep (workers/watcher.py)."""
    return [sys.executable, "-m", "workers.watcher"]


def multistream_argv() -> list[str]:
    """The `multistream` container role: relays to multistream targets
    (workers/multistream.py)."""
    return [sys.executable, "-m", "workers.multistream"]


def start_multistream(env: dict[str, str], var_dir: Path, *, name: str = "multistream") -> Handle:
    """The multistream relay process (workers/multistream.py)."""
    return _spawn(name, multistream_argv(), env, var_dir)


def reconciler_argv(metrics_port: int) -> list[str]:
    """The `reconciler` container role (deploy/entrypoint.sh): reconcile
    passes every STUDIO_RECONCILE_INTERVAL seconds, metrics on its own port."""
    return [
        sys.executable,
        "-m",
        "studio.metrics_exporter",
        "--port",
        str(metrics_port),
        "--addr",
        "127.0.0.1",
        "workers.reconcile",
        "--loop",
    ]
