"""PostgreSQL for development and tests: DATABASE_URL, the machine's server,
or a private cluster run by pytest-postgresql's executor (pg_ctl under
mirakuru)."""

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
from mirakuru.exceptions import ExecutorError
from psycopg import sql
from pytest_postgresql.executors import PostgreSQLExecutor

from devtools.process import Service, StackError, free_port, log_tail, stop

PG_CTL = Path(__file__).resolve().parent / "pg_ctl"  # as user postgres when root


@dataclass(kw_only=True)
class PostgresService(Service):
    server_url: str  # the maintenance database, for CREATE/DROP DATABASE
    database: str
    home: Path | None = None  # a private cluster's directory


class _Cluster(PostgreSQLExecutor):
    """pytest-postgresql's executor, but the data lives on (make dev's var/pg)."""

    def init_directory(self) -> None:
        if not Path(self.datadir, "PG_VERSION").exists():
            super().init_directory()

    def clean_directory(self) -> None:
        pass


def ensure_postgres(var_dir: Path, database: str = "studio") -> PostgresService:
    """PostgreSQL with `database` in it: DATABASE_URL if set (nothing is
    created); else the server on 127.0.0.1:5432 (trust auth, user postgres);
    else the private cluster of var_dir."""
    if url := os.environ.get("DATABASE_URL"):
        parts = urllib.parse.urlsplit(url)
        server_url, database = parts._replace(path="/postgres").geturl(), parts.path[1:]
        return PostgresService(name="postgres", url=url, server_url=server_url, database=database)
    return _attach(5432, database) if pg_ready(5432) else start_postgres(var_dir, database)


def start_postgres(var_dir: Path, database: str = "studio", port: int = 0) -> PostgresService:
    """The private cluster of var_dir (initdb on first use, its data kept) on
    `port` (any free one by default), fsync off; one already running
    (another fixture, a crashed run) is used."""
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
    """The cluster's directory: var_dir/pg, unless user postgres (when we are
    root) cannot reach it; then one under /tmp named after var_dir."""
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
    with contextlib.suppress(psycopg.errors.DuplicateDatabase):
        _execute(server_url, "CREATE DATABASE {}", name)


def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE name if it exists, disconnecting its clients."""
    _execute(server_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def _execute(server_url: str, statement: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(name)))
