"""The studio's processes for tests and benchmarks, as mirakuru executors
(`.stop()`, `.kill()` as a crash would, `.start()` again, `.process`, plus
`.log_path` and `.base_url`): a gunicorn tier, upload workers, the watcher,
the multistream supervisor, a whole local media node, and a bare nginx-rtmp
standing in for a multistream target. Their environment comes from
devtools/runner.py, as `make dev`'s does; their command lines from
tests/launch.py."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import psycopg
import redis
from mirakuru import Executor, HTTPExecutor, SimpleExecutor, TCPExecutor
from mirakuru.base import ENV_UUID
from mirakuru.exceptions import ProcessFinishedWithError
from psycopg import sql
from rq import Worker

from devtools import runner
from devtools.nginx import RTMP_MODULE, start_standalone
from devtools.process import Service, executor, free_port, start
from tests import launch


class Started:
    """mirakuru's executor, except: `with` on one already started only stops
    it at the end; a stop accepts any exit code; the environment given is
    the whole environment, not additions to this process's."""

    log_path: Path | None = None

    def __enter__(self) -> Self:
        return self if self.running() else super().__enter__()

    def stop(self, *args: object, **kwargs: object) -> Self:
        with contextlib.suppress(ProcessFinishedWithError):
            super().stop(*args, **kwargs)
        return self

    @property
    def envvars(self) -> dict[str, str]:
        # mirakuru's marker lets it find and stop the process's children.
        return {**(self._envvars or os.environ), ENV_UUID: self._uuid}


class Simple(Started, SimpleExecutor):
    """A process that is started, not waited for."""


class Tcp(Started, TCPExecutor):
    """A process that is ready when its port accepts connections."""


class Http(Started, HTTPExecutor):
    """A process that is ready when its URL answers 2xx."""


def start_gunicorn(
    env: dict[str, str],
    var_dir: Path,
    port: int,
    *,
    tier: str = "web",
    name: str | None = None,
    start_timeout: float = runner.SERVE_TIMEOUT,
    **options: object,
) -> Http:
    """A gunicorn tier (`launch.gunicorn_argv`), returned once its app
    answers the liveness route (the master binds before its workers have
    imported the app)."""
    url = f"http://127.0.0.1:{port}"
    name = name or f"{'gunicorn' if tier == 'web' else tier}-{port}"
    argv = launch.gunicorn_argv(port, tier=tier, **options)
    log_path = var_dir / "logs" / f"{name}.log"
    ready = url + runner.LIVENESS_PATH
    server = executor(Http, argv, log_path, env=env, url=ready, timeout=start_timeout)
    server.base_url = url
    return start(server, f"{ready} did not answer")


def start_process(argv: list[str], env: dict[str, str], var_dir: Path, name: str) -> Simple:
    """A background process logging to var_dir/logs/NAME.log; its stop
    waits 20 s (a running upload finishes) before SIGKILL."""
    return executor(Simple, argv, var_dir / "logs" / f"{name}.log", env=env, timeout=20).start()


class Workers(Started, Executor):
    """An RQ worker pool, started once `count` of its workers on `queue` are
    registered in Redis (they register after warming up: app, database,
    storage client)."""

    def __init__(self, argv: list[str], *, count: int, queue: str, **options) -> None:
        super().__init__(argv, **options)
        self.redis = redis.Redis.from_url(options["envvars"]["REDIS_URL"])
        self.count, self.queue = count, queue

    def pre_start_check(self) -> bool:
        return False

    def after_start_check(self) -> bool:
        workers = Worker.all(connection=self.redis)
        return sum(self.queue in worker.queue_names() for worker in workers) >= self.count


def start_workers(
    env, var_dir, count=launch.DEFAULT_WORKERS, *, name="rq-workers", queues=None
) -> Workers:
    """Upload workers (`launch.workers_argv`), returned once they are registered."""
    queue = (queues or launch.node_queues(env))[0]
    argv, log_path = launch.workers_argv(env, count, queues), var_dir / "logs" / f"{name}.log"
    pool = executor(Workers, argv, log_path, env=env, timeout=60, count=count, queue=queue)
    return start(pool, f"{count} upload workers on {queue}")


def start_watcher(env, var_dir, *, name="watcher") -> Simple:
    return start_process(launch.watcher_argv(env), env, var_dir, name)


def start_multistream(env, var_dir, *, name="multistream") -> Simple:
    return start_process(launch.python("workers.multistream"), env, var_dir, name)


@dataclass
class RunningNode(runner.LocalNode):
    """A local media node with its watcher and upload workers running."""

    watcher: Simple | None = None
    workers: Workers | None = None

    def stop(self) -> None:
        for process in (self.workers, self.watcher):
            if process is not None:
                process.stop()
        self.nginx.stop()


def start_node(env, var_dir, node_id, *, hook_url: str, workers: int = 2, **ports) -> RunningNode:
    """Node `node_id` (runner.start_node_nginx) with its watcher and
    `workers` upload workers running, returned once they are registered."""
    local = runner.start_node_nginx(env, var_dir, node_id, hook_url=hook_url, **ports)
    node = RunningNode(local.id, local.nginx, local.env)
    node_dir = node.nginx.hls_dir.parent
    try:
        node.watcher = start_watcher(node.env, node_dir, name=f"watcher-{node_id}")
        node.workers = start_workers(node.env, node_dir, workers, name=f"rq-workers-{node_id}")
    except BaseException:
        node.stop()
        raise
    return node


@dataclass(kw_only=True)
class RtmpTargetService(Service):
    """A multistream target: takes any publish on `rtmp_url`, reports what
    it receives on `stat_url` (rtmp_stat XML)."""

    rtmp_url: str
    stat_url: str


def start_rtmp_target(
    var_dir: Path,
    name: str = "rtmp-target",
    rtmp_port: int | None = None,
    http_port: int | None = None,
) -> RtmpTargetService:
    """nginx/standalone/rtmp-target.conf in var_dir/NAME; free ports unless
    given (the same ones bring a stopped target back)."""
    rtmp_port, http_port = rtmp_port or free_port(), http_port or free_port()
    values = {"RTMP_PORT": rtmp_port, "HTTP_PORT": http_port, "RTMP_MODULE": RTMP_MODULE}
    server = start_standalone("rtmp-target", var_dir, name, values, rtmp_port)
    return RtmpTargetService(
        name=name,
        url=f"http://127.0.0.1:{http_port}",
        rtmp_url=f"rtmp://127.0.0.1:{rtmp_port}/live",
        stat_url=f"http://127.0.0.1:{http_port}/stat",
        log_path=server.log_path,
        executor=server,
    )


def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE name if it exists, disconnecting its clients."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as connection:
        connection.execute(statement)
