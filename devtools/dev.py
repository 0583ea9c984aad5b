"""`make dev`: the whole studio on this machine, in the foreground.

PostgreSQL (the checkout's own database on the machine's server, else a
private cluster) and a private Redis, fake-gcs-server as the bucket (objects
kept under var/gcs), nginx (RTMP ingest with HLS, its control/stat API, the
CDN edge, and the front site that routes /ws/ to the socket tier),
migrations, then what production runs: gunicorn's web tier with
gunicorn.conf.py, the socket tier, the callback tier (where the media
engine's hook URL points), the upload workers, the HLS watcher and the
reconciler,
supervised by devtools/supervise.py (a process that exits is reported and
stops everything). Ctrl-C or SIGTERM stops everything this started.

With `SRS_BIN=/path/to/srs` SRS 5 (srs/srs.conf, devtools/srs.py) is the
ingest instead of nginx-rtmp; nginx still runs as the CDN edge. Secrets are
generated on the first run and kept in var/secrets.env.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import sys
import urllib.parse
from pathlib import Path

from devtools import runner, srs, stack, tls
from devtools.supervise import Supervisor

ROOT = stack.ROOT
# Another state directory (tests run a whole `make dev` in a temporary one).
VAR = Path(os.environ.get("STUDIO_DEV_VAR") or ROOT / "var")


def load_secrets(var_dir: Path) -> dict[str, str]:
    """STUDIO_SECRET_KEY and STUDIO_HOOK_TOKEN: from the environment, else
    var/secrets.env, generated (and saved, mode 600) on the first run."""
    path = var_dir / "secrets.env"
    saved: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                saved[key.strip()] = value.strip()
    changed = False
    for key in ("STUDIO_SECRET_KEY", "STUDIO_HOOK_TOKEN"):
        if os.environ.get(key):
            saved[key] = os.environ[key]
        elif key not in saved:
            saved[key] = secrets.token_urlsafe(32)
            changed = True
    if changed:
        var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in saved.items()))
        path.chmod(0o600)
    return saved


def checkout_database(root: Path) -> str:
    """The PostgreSQL database of the checkout at `root`: `studio_<folder>_<hash
    of its path>`, so two checkouts on one machine never share one."""
    path = str(root.resolve())
    slug = re.sub(r"[^a-z0-9]+", "_", Path(path).name.lower()).strip("_")[:24]
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"studio_{slug}_{digest}" if slug else f"studio_{digest}"


def checkout_backends(root: Path, var_dir: Path) -> tuple[stack.PostgresService, stack.Service]:
    """PostgreSQL and Redis for one checkout: DATABASE_URL / REDIS_URL when
    set; else the database checkout_database(root) (on the machine's
    PostgreSQL, or a private cluster under var_dir) and a private Redis under
    var_dir (RQ queues, rate limits and pub/sub are all in Redis db 0, so a
    shared server would mix checkouts)."""
    postgres = stack.ensure_postgres(var_dir, checkout_database(root))
    try:
        redis = stack.ensure_redis(var_dir, use_system=False)
    except BaseException:
        postgres.stop()
        raise
    return postgres, redis


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "logs").mkdir(exist_ok=True)
    keys = load_secrets(VAR)
    srs_bin = os.environ.get("SRS_BIN")
    services: list = []
    _stop_on_signals()
    try:
        postgres, redis = checkout_backends(ROOT, VAR)
        services += [postgres, redis]
        gcs = stack.start_fake_gcs(VAR, stack.free_port(4443), backend="filesystem")
        services.append(gcs)
        # nginx's front site is the studio's address: /ws/ to the socket
        # tier, the rest to the web tier, as in production.
        front_port, port, sockets_port, hooks_port = (
            stack.free_port(p) for p in (5000, 5001, 5002, 5003)
        )
        front = stack.FrontSite(
            port=front_port,
            web_url=f"http://127.0.0.1:{port}",
            sockets_url=f"http://127.0.0.1:{sockets_port}",
        )
        public_url = os.environ.get("STUDIO_PUBLIC_URL", f"http://127.0.0.1:{front_port}")
        # The engine's callbacks go to the callback tier, never behind pages.
        engine = "srs" if srs_bin else "nginx-rtmp"
        hook_url = runner.hook_url(hooks_port, engine, keys["STUDIO_HOOK_TOKEN"])
        hls_dir = VAR / "hls"
        # HTTPS (self-signed) so the go-live page may use the camera on
        # https://<machine name>:8443; SRS's WebRTC endpoints (WHIP, ...) go to its API.
        srs_api = stack.free_port(1985) if srs_bin else 9
        cert = tls.self_signed_cert(VAR)
        site = stack.TlsSite(
            port=stack.free_port(8443),
            cert=cert.cert,
            key=cert.key,
            host="0.0.0.0",  # noqa: S104
            name=cert.names[0],  # the machine's name: WebRTC URLs work from other devices too
            studio_url=f"http://127.0.0.1:{port}",
            srs_api_url=f"http://127.0.0.1:{srs_api}",
            sockets_url=front.sockets_url,
        )
        nginx = stack.start_nginx(
            VAR,
            hook_url=hook_url,
            gcs_url=gcs.url,
            bucket=gcs.bucket,
            rtmp_port=stack.free_port(1935 if not srs_bin else None),
            http_port=stack.free_port(8080),
            edge_port=stack.free_port(8081),
            hls_dir=hls_dir,
            tls=site,
            front=front,
            hls_fragment=float(os.environ.get("STUDIO_HLS_FRAGMENT", "2")),
            studio_origin=public_url,  # hls.js sends private streams' cookies from there
        )
        services.append(nginx)
        supervisor = Supervisor(VAR / "logs")
        for service in services:
            supervisor.watch(service.name, service.process, service.log_path)
        extra = {
            "STUDIO_LOG_LEVEL": os.environ.get("STUDIO_LOG_LEVEL", "INFO"),
            "STUDIO_PROXY_HOPS": os.environ.get("STUDIO_PROXY_HOPS", "1"),
            # A second local nginx-rtmp may stand in for YouTube here.
            "STUDIO_TARGET_ALLOW_PRIVATE": os.environ.get("STUDIO_TARGET_ALLOW_PRIVATE", "1"),
        }
        rtmp_url, ready = nginx.rtmp_url, []
        if srs_bin:
            launch = srs.srs_launch(VAR, srs_bin, hook_url, hls_dir, api_port=srs_api)
            supervisor.add("srs", launch.argv, launch.env, cwd=launch.cwd)
            rtmp_url = launch.rtmp_url
            ready.append(launch.rtmp_port)
            extra.update(STUDIO_RTMP_URL=rtmp_url, STUDIO_SRS_API_URL=launch.api_url)
        env = runner.studio_env(
            database_url=postgres.url,
            redis_url=redis.url,
            gcs=gcs,
            nginx=nginx,
            public_url=public_url,
            secret_key=keys["STUDIO_SECRET_KEY"],
            hook_token=keys["STUDIO_HOOK_TOKEN"],
            engine="srs" if srs_bin else "nginx-rtmp",
            hls_dir=hls_dir.resolve(),
            extra=extra,
        )
        print(f"migrating the database {postgres.database} ...", flush=True)
        runner.migrate(env, VAR)
        add_studio_processes(supervisor, env, port, sockets_port, hooks_port)
        https = ", ".join(f"https://{name}:{site.port}" for name in cert.names)

        def started() -> None:
            # The gunicorn tiers are ready when their app answers, not when
            # the master binds (its workers may still be importing the app).
            tiers = (port, sockets_port, hooks_port)
            try:
                for tier_port in tiers:
                    url = f"http://127.0.0.1:{tier_port}{runner.LIVENESS_PATH}"
                    stack.wait_for_http(url, runner.SERVE_TIMEOUT)
                for ready_port in ready:
                    stack.wait_for_port("127.0.0.1", ready_port, 90)
            except stack.StackError:
                return  # the supervisor reports a child that died
            _banner(public_url, https, rtmp_url, nginx, gcs, srs_bin, postgres, redis)

        supervisor.run(started)
        if supervisor.exited is None:
            return 0  # stopped by Ctrl-C / SIGTERM
        code = supervisor.exited[1]
        return 128 - code if code < 0 else code or 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        print("\nstopping ...", file=sys.stderr)
        for service in reversed(services):
            service.stop()


def add_studio_processes(
    supervisor: Supervisor, env: dict[str, str], port: int, sockets_port: int, hooks_port: int
) -> None:
    """The studio's own processes, as the containers run them
    (docker-compose.yml, deploy/entrypoint.sh): gunicorn with gunicorn.conf.py
    (its graceful-shutdown hooks), the socket tier, the callback tier, the
    upload workers, the HLS watcher, the reconciler and the multistream
    relays. A new process is one
    more line here."""
    web = {**env, "PROMETHEUS_MULTIPROC_DIR": str(VAR.resolve() / "metrics" / "web")}
    # Like the entrypoint: one metrics registry per process outside gunicorn.
    background = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    config, control = ROOT / "gunicorn.conf.py", VAR.resolve() / "run" / "gunicorn.ctl"
    control.parent.mkdir(parents=True, exist_ok=True)
    argv = runner.gunicorn_argv(port, config=config, control_socket=control)
    supervisor.add("gunicorn", argv, web)
    sockets_control = control.with_name("sockets.ctl")
    sockets = {**env, "PROMETHEUS_MULTIPROC_DIR": str(VAR.resolve() / "metrics" / "sockets")}
    supervisor.add(
        "sockets", runner.sockets_argv(sockets_port, control_socket=sockets_control), sockets
    )
    hooks = {**env, "PROMETHEUS_MULTIPROC_DIR": str(VAR.resolve() / "metrics" / "hooks")}
    hooks_control = control.with_name("hooks.ctl")
    supervisor.add("hooks", runner.hooks_argv(hooks_port, control_socket=hooks_control), hooks)
    supervisor.add("rq-workers", runner.workers_argv(env["REDIS_URL"]), background)
    supervisor.add("watcher", runner.watcher_argv(), background)
    supervisor.add("reconciler", runner.reconciler_argv(stack.free_port()), background)
    supervisor.add("multistream", runner.multistream_argv(), background)


def _banner(public_url, https, rtmp_url, nginx, gcs, srs_bin, postgres, redis) -> None:
    engine = f"SRS ({srs_bin})" if srs_bin else "nginx-rtmp"
    print(
        f"""
Live Studio is running.
  Studio        {public_url}   (create an account at /register)
  HTTPS         {https}
                (camera/go-live; self-signed: accept it once, see docs/tls.md)
  RTMP ingest   {rtmp_url}   ({engine}; stream key = "<stream id>?secret=<key>")
  Try it        ffmpeg -re -f lavfi -i testsrc=size=1280x720:rate=30 -f lavfi -i sine \\
                  -c:v libx264 -preset veryfast -g 60 -c:a aac -f flv \\
                  "{rtmp_url}/<stream id>?secret=<key>"
  CDN edge      {nginx.edge_url}/live/<stream id>/index.m3u8
  Bucket        {gcs.url}/{gcs.bucket}/   (fake-gcs-server, objects in var/gcs)
  Database      {_without_password(postgres.url)}
  Redis         {_without_password(redis.url)}
  Logs          {VAR / "logs"}/   (one file per process)
A process that exits stops everything (its name, exit code and log are shown).
Ctrl-C stops everything.""",
        flush=True,
    )


def _without_password(url: str) -> str:
    """A service URL fit for the terminal (DATABASE_URL may hold a password)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _stop_on_signals() -> None:
    # Started by make in the background, Python may inherit SIGINT ignored.
    def leave(signum, _frame):
        raise SystemExit(0)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, leave)


if __name__ == "__main__":
    sys.exit(main())
