"""PostgreSQL for devtools/stack.py: the machine's server or a private cluster,
and CREATE/DROP DATABASE through psql.

Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from devtools.process import (
    START_TIMEOUT,
    Service,
    StackError,
    _group_of,
    _log_tail,
    free_port,
    port_open,
    recall,
    spawn,
    terminate,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(kw_only=True)
class PostgresService(Service):
    """PostgreSQL: `url` is the application database, `server_url` the
    maintenance database on the same server (for CREATE/DROP DATABASE)."""

    server_url: str
    database: str
    # An ephemeral private cluster: its directory goes away with it.
    remove_on_stop: Path | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the cluster if we started it (and delete it if ephemeral)."""
        super().stop(timeout)
        if self.remove_on_stop is not None:
            shutil.rmtree(self.remove_on_stop, ignore_errors=True)
            self.remove_on_stop = None


_DB_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def ensure_postgres(
    var_dir: Path, database: str = "studio", *, use_system: bool = True
) -> PostgresService:
    """PostgreSQL with `database` in it.

    DATABASE_URL if set (nothing is created); else the server on
    127.0.0.1:5432 (trust auth, user postgres) unless `use_system` is
    false; else a private cluster under var_dir/pg, reusing one an earlier
    command line run left running.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        parts = urllib.parse.urlsplit(url)
        return PostgresService(
            name="postgres",
            url=url,
            server_url=parts._replace(path="/postgres").geturl(),
            database=parts.path.lstrip("/"),
        )
    if use_system and pg_ready("127.0.0.1", 5432):
        return _attach_postgres(5432, database)
    state = recall(var_dir, "postgres")
    if state is not None:
        return _attach_postgres(state["port"], database)
    return start_postgres(var_dir, database)


def _attach_postgres(port: int, database: str) -> PostgresService:
    """Use a running server on 127.0.0.1:port (not ours): create `database`."""
    base = f"postgresql://postgres@127.0.0.1:{port}"
    create_database(f"{base}/postgres", database)
    return PostgresService(
        name="postgres",
        url=f"{base}/{database}",
        server_url=f"{base}/postgres",
        database=database,
    )


def start_postgres(
    var_dir: Path,
    database: str = "studio",
    port: int | None = None,
    *,
    ephemeral: bool = False,
) -> PostgresService:
    """Start a private cluster (initdb on first use) on a free port.

    The cluster lives in var_dir/pg and keeps its data across restarts;
    `ephemeral` gives a fresh one in a temporary directory, deleted by stop().
    Runs as user `postgres` when we are root (PostgreSQL refuses root).
    fsync is off: this cluster holds development and test data only.
    """
    started = time.monotonic()
    home = _pg_home(var_dir, ephemeral)
    user = "postgres" if os.geteuid() == 0 else None
    if not (home / "data" / "PG_VERSION").exists():
        _initdb(home, user)
    port = port or free_port(55432)
    argv = [
        str(PG_BIN / "postgres"),
        "-D",
        str(home / "data"),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={home}",
        "-c",
        "fsync=off",
    ]
    process, log_path = spawn(f"postgres-{port}", argv, var_dir, user=user)
    try:
        _wait_pg_ready(port, process, log_path)
        create_database(f"postgresql://postgres@127.0.0.1:{port}/postgres", database)
    except BaseException:
        terminate(process, signal.SIGINT)
        raise
    base = f"postgresql://postgres@127.0.0.1:{port}"
    return PostgresService(
        name="postgres",
        url=f"{base}/{database}",
        server_url=f"{base}/postgres",
        database=database,
        log_path=log_path,
        process=process,
        stop_signal=signal.SIGINT,  # "fast" shutdown: do not wait for clients
        started_in=time.monotonic() - started,
        remove_on_stop=home if ephemeral else None,
    )


def _pg_home(var_dir: Path, ephemeral: bool = False) -> Path:
    """Directory for the cluster (data/) and its Unix socket.

    var_dir/pg, unless user postgres cannot reach it (root's private
    temporary directories) or its socket path would be too long for a Unix
    socket; then a directory under /tmp derived from var_dir. Ephemeral
    clusters get a new temporary directory.
    """
    var_dir.mkdir(parents=True, exist_ok=True)
    var_dir = var_dir.resolve()
    home = var_dir / "pg"
    reachable = os.geteuid() != 0 or all(
        p.stat().st_mode & 0o001 for p in [var_dir, *var_dir.parents]
    )
    if ephemeral:
        home = Path(tempfile.mkdtemp(prefix="studio-pg-"))
    elif not reachable or len(str(home)) > 80:
        digest = sha256(str(var_dir).encode()).hexdigest()[:10]
        home = Path(tempfile.gettempdir()) / f"studio-pg-{digest}"
    home.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(home, entry.pw_uid, entry.pw_gid)
    return home


def _initdb(home: Path, user: str | None) -> None:
    """Create a cluster in home/data: trust auth, superuser postgres, UTF-8."""
    argv = [
        str(PG_BIN / "initdb"),
        "-D",
        str(home / "data"),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
    ]
    identity = {"user": user, "group": _group_of(user), "extra_groups": []} if user else {}
    result = subprocess.run(
        argv,
        check=False,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        **identity,
    )
    if result.returncode != 0:
        raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")


def pg_ready(host: str, port: int) -> bool:
    """True if a PostgreSQL server on host:port accepts connections."""
    pg_isready = shutil.which("pg_isready") or str(PG_BIN / "pg_isready")
    if not Path(pg_isready).exists():
        return port_open(host, port)
    argv = [pg_isready, "-q", "-h", host, "-p", str(port), "-t", "2"]
    return subprocess.run(argv, check=False).returncode == 0


def _wait_pg_ready(port: int, process: subprocess.Popen, log_path: Path) -> None:
    """Wait until our postgres accepts connections (not just the TCP port)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not pg_ready("127.0.0.1", port):
        if process.poll() is not None:
            raise StackError(f"postgres exited with {process.returncode}{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise StackError(f"postgres not ready after {START_TIMEOUT}s{_log_tail(log_path)}")
        time.sleep(0.05)


def create_database(server_url: str, name: str, exist_ok: bool = True) -> None:
    """CREATE DATABASE name on the server of `server_url` (any database URL)."""
    _check_db_name(name)
    exists = _psql(server_url, "SELECT 1 FROM pg_database WHERE datname = :'name'", name=name)
    if exists.strip():
        if exist_ok:
            return
        raise StackError(f"database {name} already exists")
    try:
        _psql(server_url, 'CREATE DATABASE :"name"', name=name)
    except StackError as error:
        # Another process may have created it between the check and now.
        if not (exist_ok and "already exists" in str(error)):
            raise


def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE name if it exists, disconnecting its clients."""
    _check_db_name(name)
    _psql(server_url, 'DROP DATABASE IF EXISTS :"name" WITH (FORCE)', name=name)


def _check_db_name(name: str) -> None:
    """Refuse anything but a plain identifier as a database name."""
    if not name or not set(name) <= _DB_NAME_CHARS or name[0].isdigit():
        raise ValueError(f"not a plain database name: {name!r}")


def _psql(server_url: str, sql: str, **variables: str) -> str:
    """Run one statement; psql quotes the :'var' / :"var" values itself."""
    psql = shutil.which("psql") or str(PG_BIN / "psql")
    argv = [psql, "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", server_url]
    for key, value in variables.items():
        argv += ["-v", f"{key}={value}"]
    result = subprocess.run(
        argv, input=sql + "\n", check=False, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise StackError(f"psql: {sql}: {result.stderr.strip()}")
    return result.stdout
