"""`make dev`: the whole studio on this machine, in the foreground.

PostgreSQL and Redis (the machine's own if they run, else private ones),
fake-gcs-server as the bucket (objects kept under var/gcs), nginx (RTMP
ingest with HLS, its control/stat API, the CDN edge, and the front site
that routes /ws/ to the socket tier), migrations, gunicorn's web tier and
socket tier, the upload workers and the HLS watcher. Ctrl-C or SIGTERM stops
everything this started.

With `SRS_BIN=/path/to/srs` SRS 5 (srs/srs.conf) is the ingest instead of
nginx-rtmp; nginx still runs as the CDN edge. Secrets are generated on the
first run and kept in var/secrets.env.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path

from devtools import runner, stack, tls

ROOT = stack.ROOT
VAR = ROOT / "var"


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


def start_srs(
    var_dir: Path, srs_bin: str, hook_url: str, hls_dir: Path, api: int | None = None
) -> runner.Handle:
    """SRS 5 with srs/srs.conf; ports, paths and hook URLs through its env
    overrides (srs5-contract.md §5.3)."""
    rtmp, api = stack.free_port(1935), api or stack.free_port(1985)
    env = {
        **os.environ,
        "SRS_LISTEN": str(rtmp),
        "SRS_HTTP_API_LISTEN": str(api),
        "SRS_RTC_SERVER_CANDIDATE": os.environ.get("CANDIDATE", "127.0.0.1"),
        "SRS_VHOST_HLS_HLS_PATH": str(hls_dir),
        "SRS_DAEMON": "off",
        "SRS_SRS_LOG_TANK": "console",
    }
    env["SRS_EXPORTER_LISTEN"] = str(stack.free_port(9972))
    for event in ("CONNECT", "CLOSE", "PUBLISH", "UNPUBLISH", "PLAY", "STOP", "DVR", "HLS"):
        env[f"SRS_VHOST_HTTP_HOOKS_ON_{event}"] = hook_url
    argv = [srs_bin, "-c", str(ROOT / "srs" / "srs.conf")]
    handle = runner.Handle(name="srs", argv=argv, env=env, var_dir=var_dir,
                           log_path=var_dir / "logs" / "srs.log")  # fmt: skip
    handle.start()
    stack.wait_for_port("127.0.0.1", rtmp, 30, handle.process, handle.log_path)
    handle.url = f"rtmp://127.0.0.1:{rtmp}/live"
    handle.env["STUDIO_SRS_API_URL"] = f"http://127.0.0.1:{api}"
    return handle


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "logs").mkdir(exist_ok=True)
    keys = load_secrets(VAR)
    srs_bin = os.environ.get("SRS_BIN")
    services: list = []
    handles: list[runner.Handle] = []
    _stop_on_signals()
    try:
        postgres = stack.ensure_postgres(VAR, "studio")
        services.append(postgres)
        redis = stack.ensure_redis(VAR)
        services.append(redis)
        gcs = stack.start_fake_gcs(VAR, stack.free_port(4443), backend="filesystem")
        services.append(gcs)
        # nginx's front site is the studio's address: /ws/ to the socket
        # tier, the rest to the web tier, as in production.
        front_port, port, sockets_port = (stack.free_port(p) for p in (5000, 5001, 5002))
        front = stack.FrontSite(port=front_port, web_url=f"http://127.0.0.1:{port}",
                                sockets_url=f"http://127.0.0.1:{sockets_port}")  # fmt: skip
        public_url = os.environ.get("STUDIO_PUBLIC_URL", f"http://127.0.0.1:{front_port}")
        hooks = "srs" if srs_bin else "nginx-rtmp"
        hook_url = f"http://127.0.0.1:{port}/hooks/{hooks}?token={keys['STUDIO_HOOK_TOKEN']}"
        hls_dir = VAR / "hls"
        # HTTPS (self-signed) so the go-live page may use the camera on
        # https://<machine name>:8443; /rtc/v1/whip/ goes to SRS's API.
        srs_api = stack.free_port(1985) if srs_bin else 9
        cert = tls.self_signed_cert(VAR)
        site = stack.TlsSite(
            port=stack.free_port(8443), cert=cert.cert, key=cert.key, host="0.0.0.0",  # noqa: S104
            studio_url=f"http://127.0.0.1:{port}", srs_api_url=f"http://127.0.0.1:{srs_api}",
            sockets_url=front.sockets_url,
        )  # fmt: skip
        nginx = stack.start_nginx(
            VAR, hook_url=hook_url, gcs_url=gcs.url, bucket=gcs.bucket,
            rtmp_port=stack.free_port(1935 if not srs_bin else None),
            http_port=stack.free_port(8080), edge_port=stack.free_port(8081), hls_dir=hls_dir,
            tls=site, front=front,
        )  # fmt: skip
        services.append(nginx)
        extra = {"STUDIO_LOG_LEVEL": os.environ.get("STUDIO_LOG_LEVEL", "INFO"),
                 "STUDIO_PROXY_HOPS": os.environ.get("STUDIO_PROXY_HOPS", "1")}  # fmt: skip
        rtmp_url = nginx.rtmp_url
        if srs_bin:
            srs = start_srs(VAR, srs_bin, hook_url, hls_dir.resolve(), srs_api)
            handles.append(srs)
            rtmp_url = srs.url
            extra.update(STUDIO_RTMP_URL=rtmp_url, STUDIO_SRS_API_URL=srs.env["STUDIO_SRS_API_URL"])
        env = runner.studio_env(
            database_url=postgres.url, redis_url=redis.url, gcs=gcs, nginx=nginx,
            public_url=public_url, secret_key=keys["STUDIO_SECRET_KEY"],
            hook_token=keys["STUDIO_HOOK_TOKEN"], engine="srs" if srs_bin else "nginx-rtmp",
            hls_dir=hls_dir.resolve(), extra=extra,
        )  # fmt: skip
        print("migrating the database ...", flush=True)
        runner.migrate(env, VAR)
        handles.append(runner.start_gunicorn(env, VAR, port, name="gunicorn"))
        handles.append(runner.start_sockets(env, VAR, sockets_port, name="sockets"))
        handles.append(runner.start_workers(env, VAR))
        handles.append(runner.start_watcher(env, VAR))
        https = ", ".join(f"https://{name}:{site.port}" for name in cert.names)
        _banner(public_url, https, rtmp_url, nginx, gcs, srs_bin)
        while True:
            signal.pause()
            for handle in handles:
                if not handle.alive():
                    print(f"{handle.name} exited; see {handle.log_path}", file=sys.stderr)
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        print("\nstopping ...", file=sys.stderr)
        for handle in reversed(handles):
            handle.stop()
        for service in reversed(services):
            service.stop()


def _banner(public_url, https, rtmp_url, nginx, gcs, srs_bin) -> None:
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
  Logs          {VAR / "logs"}/
Ctrl-C stops everything.""",
        flush=True,
    )


def _stop_on_signals() -> None:
    # Started by make in the background, Python may inherit SIGINT ignored.
    def leave(signum, _frame):
        raise SystemExit(0)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, leave)


if __name__ == "__main__":
    sys.exit(main())
