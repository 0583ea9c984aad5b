"""The studio's own processes: migrations, the gunicorn tiers, the RQ
workers, the HLS watcher, the reconciler and the multistream relays. The
command lines serve `make dev` (devtools/dev.py runs them under honcho); the
starters serve the tests and benchmarks and return mirakuru executors
(`.stop()`, `.kill()` as a crash would, `.start()` again, `.process`, plus
`.log_path`, `.base_url`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from devtools.gcs import GcsService
from devtools.nginx import NginxService, start_nginx
from devtools.process import ROOT, Http, Simple, StackError, executor, start

# Seconds a gunicorn may take until its app answers: importing the app in
# each worker takes well over 10 s when the machine is busy.
SERVE_TIMEOUT = 120.0
# The liveness route (studio/health.py): no database, no Redis.
LIVENESS_PATH = "/healthz"
# Upload worker processes (SimpleWorker), measured in docs/benchmarks.md.
DEFAULT_WORKERS = 4


def studio_env(
    *,
    database_url: str,
    redis_url: str,
    gcs: GcsService,
    nginx: NginxService | None,
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


def hook_url(hooks_port: int, engine: str, token: str) -> str:
    """The callback URL a media engine is given: the callback tier on
    127.0.0.1:hooks_port, the route of `engine` ("srs" or "nginx-rtmp")."""
    return f"http://127.0.0.1:{hooks_port}/hooks/{engine}?token={token}"


def migrate(env: dict[str, str], var_dir: Path, timeout: float = 120) -> None:
    """`flask --app studio db upgrade`; raises StackError with its output on failure."""
    argv = [sys.executable, "-m", "flask", "--app", "studio", "db", "upgrade"]
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise StackError(f"migrations failed:\n{result.stdout}{result.stderr}")


# --------------------------------------------------------------------------
# Command lines (`make dev` runs them under honcho)


# The gunicorn tiers: config file (besides `config` for the web tier, e.g.
# gunicorn.conf.py with its server hooks) and default options.
TIERS = {
    "web": (None, {"worker_class": "gthread", "workers": 2, "threads": 16, "timeout": 60}),
    "hooks": ("gunicorn_hooks.conf.py", {"workers": 1, "threads": 8}),
    "sockets": ("gunicorn_sockets.conf.py", {"workers": 1, "worker_connections": 5000}),
}


def gunicorn_argv(
    port: int, *, tier: str = "web", config: Path | None = None, **options: object
) -> list[str]:
    """gunicorn `wsgi:app` on 127.0.0.1:port for a tier of TIERS: "web"
    (gthread), "hooks" (the media servers' callbacks) or "sockets" (gevent, a
    greenlet per websocket). `options` (workers=1, graceful_timeout=20,
    control_socket=PATH, ...) win over the defaults and the file's; a
    control socket of its own keeps it away from ~/.gunicorn/gunicorn.ctl,
    which every gunicorn of the user would share."""
    file, defaults = TIERS[tier]
    config = ROOT / file if file else config
    argv = [sys.executable, "-m", "gunicorn", *(["-c", str(config)] if config else [])]
    argv += ["wsgi:app", "--bind", f"127.0.0.1:{port}"]
    for key, value in {**defaults, "graceful_timeout": 5, **options}.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


def workers_argv(redis_url: str, count: int = DEFAULT_WORKERS, queues=None) -> list[str]:
    """`rq worker-pool` of `count` UploadWorker (SimpleWorker: jobs run in the
    worker process, which keeps its storage client and database pool) on
    `queues` in order: by default the uploads queue, then the replays queue,
    then the webhooks queue (a media node's: `studio.media.jobs.node_queues`)."""
    from studio.media.jobs import QUEUES

    argv = [sys.executable, "-m", "rq.cli", "worker-pool", "--num-workers", str(count)]
    argv += ["--worker-class", "workers.rq_worker.UploadWorker", "--serializer", "json"]
    return [*argv, "--url", redis_url, "--logging-level", "WARNING", *(queues or QUEUES)]


def watcher_argv() -> list[str]:
    """The HLS directory watcher + periodic sweep (workers/watcher.py)."""
    return [sys.executable, "-m", "workers.watcher"]


def multistream_argv() -> list[str]:
    """The `multistream` container role: relays to multistream targets
    (workers/multistream.py)."""
    return [sys.executable, "-m", "workers.multistream"]


def reconciler_argv(metrics_port: int) -> list[str]:
    """The `reconciler` container role (deploy/entrypoint.sh): reconcile
    passes every STUDIO_RECONCILE_INTERVAL seconds, metrics on its own port."""
    argv = [sys.executable, "-m", "studio.metrics_exporter", "--port", str(metrics_port)]
    return [*argv, "--addr", "127.0.0.1", "workers.reconcile", "--loop"]


# --------------------------------------------------------------------------
# Starters (tests, benchmarks)


def start_gunicorn(
    env: dict[str, str],
    var_dir: Path,
    port: int,
    *,
    tier: str = "web",
    name: str | None = None,
    start_timeout: float = SERVE_TIMEOUT,
    **options: object,
) -> Http:
    """A gunicorn tier (`gunicorn_argv`), returned once its app answers the
    liveness route: the master binds before its workers have imported the
    app. One that never answers is killed and named. `.base_url` is its address."""
    url = f"http://127.0.0.1:{port}"
    name = name or f"{'gunicorn' if tier == 'web' else tier}-{port}"
    log_path = var_dir / "logs" / f"{name}.log"
    argv = gunicorn_argv(port, tier=tier, **options)
    server = executor(Http, argv, log_path, env=env, url=url + LIVENESS_PATH, timeout=start_timeout)
    server.base_url = url
    return start(server, f"{url}{LIVENESS_PATH} did not answer")


def node_queues(env: dict[str, str]) -> tuple[str, ...]:
    """The queues of the media node that `env` serves (STUDIO_NODE_ID)."""
    from studio.media.jobs import DEFAULT_NODE, node_queues

    return node_queues(env.get("STUDIO_NODE_ID") or DEFAULT_NODE)


def start_workers(env, var_dir, count=DEFAULT_WORKERS, *, name="rq-workers", queues=None) -> Simple:
    """The upload workers (`workers_argv`) on `queues`, by default those of
    the node `env` serves; `.stop()` lets a running upload finish."""
    argv = workers_argv(env["REDIS_URL"], count, queues or node_queues(env))
    log_path = var_dir / "logs" / f"{name}.log"
    return executor(Simple, argv, log_path, env=env, timeout=20).start()


def wait_for_workers(env: dict[str, str], count: int, timeout: float = 60, queue=None) -> None:
    """Until `count` workers on `queue` (by default the live segments queue
    of the node `env` serves) are registered in Redis (they register after
    warming up: app, database, storage client)."""
    import redis
    from rq import Worker

    queue = queue or node_queues(env)[0]
    connection = redis.Redis.from_url(env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while True:
        ready = [w for w in Worker.all(connection=connection) if queue in w.queue_names()]
        if len(ready) >= count:
            return
        if time.monotonic() > deadline:
            raise StackError(f"{len(ready)} of {count} upload workers ready after {timeout}s")
        time.sleep(0.1)


def start_watcher(env, var_dir, *, name="watcher") -> Simple:
    """The HLS directory watcher + periodic sweep (workers/watcher.py)."""
    log_path = var_dir / "logs" / f"{name}.log"
    return executor(Simple, watcher_argv(), log_path, env=env, timeout=10).start()


def start_multistream(env, var_dir, *, name="multistream") -> Simple:
    """The multistream relay process (workers/multistream.py)."""
    log_path = var_dir / "logs" / f"{name}.log"
    return executor(Simple, multistream_argv(), log_path, env=env, timeout=10).start()


# --------------------------------------------------------------------------
# Media nodes: nginx-rtmp + the HLS watcher + upload workers, per node


@dataclass
class LocalNode:
    """A media node on this machine, under `var_dir` (var/nodes/<id>/):
    its nginx-rtmp (HLS into its own directory, callbacks naming the node),
    its watcher and its upload workers (on the node's queues only)."""

    id: str
    var_dir: Path
    env: dict[str, str]
    nginx: NginxService
    watcher: Simple
    workers: Simple

    def stop(self) -> None:
        for process in (self.workers, self.watcher, self.nginx):
            process.stop()


def node_hook_url(hook_url: str, node_id: str) -> str:
    """The callback URL of node `node_id`: `hook_url` with `node=<id>` added."""
    parts = urllib.parse.urlsplit(hook_url)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query), ("node", node_id)])
    return urllib.parse.urlunsplit(parts._replace(query=query))


def node_env(env: dict[str, str], node_id: str, nginx: NginxService) -> dict[str, str]:
    """The environment of node `node_id`'s own processes (watcher, workers)."""
    return {
        **env,
        "STUDIO_NODE_ID": node_id,
        "STUDIO_HLS_DIR": str(nginx.hls_dir),
        "STUDIO_NGINX_CONTROL_URL": nginx.control_url,
    }


def start_node(
    env: dict[str, str],
    var_dir: Path,
    node_id: str,
    *,
    hook_url: str,
    workers: int = 2,
    **ports: int | None,
) -> LocalNode:
    """Start media node `node_id` under var_dir/nodes/<id>/: its nginx-rtmp
    (`ports`: rtmp_port, http_port, edge_port of `start_nginx`, free ones by
    default) calling back `hook_url` with `node=<id>`, then its watcher and
    `workers` upload workers with STUDIO_NODE_ID and STUDIO_HLS_DIR set;
    returns once the workers are registered. `env` is the studio's
    (`studio_env`); the node's edge fronts the same bucket."""
    from studio.media.jobs import check_node_id

    node_dir = (var_dir / "nodes" / check_node_id(node_id)).resolve()
    nginx = start_nginx(
        node_dir,
        hook_url=node_hook_url(hook_url, node_id),
        gcs_url=env["STORAGE_EMULATOR_HOST"],
        bucket=env["STUDIO_GCS_BUCKET"],
        hls_fragment=float(env.get("STUDIO_HLS_FRAGMENT", 2.0)),
        **ports,
    )
    started: list = [nginx]
    try:
        own = node_env(env, node_id, nginx)
        started.append(start_watcher(own, node_dir, name=f"watcher-{node_id}"))
        started.append(start_workers(own, node_dir, workers, name=f"rq-workers-{node_id}"))
        wait_for_workers(own, workers)
    except BaseException:
        for process in reversed(started):
            process.stop()
        raise
    return LocalNode(node_id, node_dir, own, nginx, started[1], started[2])
