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

The pieces live in process.py, postgres.py, redis_server.py, gcs.py and
nginx.py; this module re-exports them and holds the command line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import urllib.parse
from pathlib import Path

if not __package__:
    # Run as `python3 devtools/stack.py`: make the `devtools` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.gcs import (
    _WRAPPER_BIN,
    DEFAULT_BUCKET,
    GcsService,
    create_bucket,
    fake_gcs_binary,
    http_request,
    start_fake_gcs,
    upload_object,
)
from devtools.nginx import (
    NGINX_TEMPLATES,
    RTMP_MODULE,
    FrontSite,
    NginxService,
    RtmpTargetService,
    TlsSite,
    _checked_hook_url,
    _nginx_binary,
    _user_directive,
    render_nginx_conf,
    render_sites,
    start_nginx,
    start_rtmp_target,
)
from devtools.postgres import (
    _DB_NAME_CHARS,
    PG_BIN,
    PostgresService,
    _attach_postgres,
    _check_db_name,
    _initdb,
    _pg_home,
    _psql,
    _wait_pg_ready,
    create_database,
    drop_database,
    ensure_postgres,
    pg_ready,
    start_postgres,
)
from devtools.process import (
    ROOT,
    START_TIMEOUT,
    Service,
    StackError,
    _alive,
    _can_bind,
    _group_of,
    _handed_out,
    _log_tail,
    _require,
    _state_path,
    forget,
    free_port,
    port_open,
    recall,
    remember,
    spawn,
    terminate,
    wait_for_http,
    wait_for_port,
)
from devtools.redis_server import ensure_redis, redis_ping, start_redis

# Everything the single-module stack.py defined stays importable from here.
__all__ = [
    "DEFAULT_BUCKET",
    "NGINX_TEMPLATES",
    "PG_BIN",
    "ROOT",
    "RTMP_MODULE",
    "START_TIMEOUT",
    "_DB_NAME_CHARS",
    "_WRAPPER_BIN",
    "FrontSite",
    "GcsService",
    "NginxService",
    "RtmpTargetService",
    "PostgresService",
    "Service",
    "StackError",
    "TlsSite",
    "_alive",
    "_attach_postgres",
    "_can_bind",
    "_check_db_name",
    "_checked_hook_url",
    "_group_of",
    "_handed_out",
    "_initdb",
    "_log_tail",
    "_nginx_binary",
    "_pg_home",
    "_psql",
    "_require",
    "_state_path",
    "_user_directive",
    "_wait_pg_ready",
    "check",
    "create_bucket",
    "create_database",
    "drop_database",
    "ensure_postgres",
    "ensure_redis",
    "fake_gcs_binary",
    "forget",
    "free_port",
    "http_request",
    "main",
    "pg_ready",
    "port_open",
    "recall",
    "redis_ping",
    "remember",
    "render_nginx_conf",
    "render_sites",
    "spawn",
    "start_fake_gcs",
    "start_nginx",
    "start_rtmp_target",
    "start_postgres",
    "start_redis",
    "terminate",
    "up",
    "upload_object",
    "wait_for_http",
    "wait_for_port",
]


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
            "server on 127.0.0.1:5432"
            if pg_ready("127.0.0.1", 5432)
            else f"private cluster from {PG_BIN}"
            if pg_bins
            else "not installed",
        ),
        "redis": (
            redis_ping("127.0.0.1", 6379) or bool(shutil.which("redis-server")),
            "server on 127.0.0.1:6379"
            if redis_ping("127.0.0.1", 6379)
            else shutil.which("redis-server") or "not installed",
        ),
        "nginx": (
            bool(nginx) and RTMP_MODULE.exists(),
            f"{nginx} + rtmp module"
            if nginx and RTMP_MODULE.exists()
            else "nginx or libnginx-mod-rtmp missing",
        ),
        "ffmpeg": (bool(shutil.which("ffmpeg")), shutil.which("ffmpeg") or "not installed"),
        "chromium": (bool(shutil.which("chromium")), shutil.which("chromium") or "not installed"),
        "fake-gcs": gcs,
    }


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
            var_dir,
            hook_url=args.hook_url,
            gcs_url=gcs.url,
            bucket=args.bucket,
            rtmp_port=free_port(args.rtmp_port),
            http_port=free_port(args.http_port),
            edge_port=free_port(args.edge_port),
            hls_dir=var_dir / "hls",
        )
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
