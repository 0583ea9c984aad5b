"""A studio on this machine for the go-live tests, shaped as in production:
nginx in front, the web tier (gunicorn gthread) and the socket tier (gunicorn
gevent, `/ws/`) behind it, on the test database and Redis; nginx-rtmp calling
the web tier's hooks, the websocket ingest publishing into that nginx."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from devtools import tls
from devtools.nginx import FrontSite, NginxService, start_nginx
from devtools.process import executor, free_port, start
from tests import stack
from tests.conftest import PASSWORD, ROOT, csrf_token
from tests.stack import Tcp


@dataclass
class Studio:
    url: str
    rtmp_url: str
    log_path: Path
    nginx: NginxService
    tls_url: str = ""
    cert: Path | None = None  # the authority that issued the HTTPS site's certificate
    sockets_log_path: Path | None = None

    def log_text(self) -> str:
        """Both tiers' logs (the ingest socket logs on the socket tier)."""
        paths = [self.log_path, *([self.sockets_log_path] if self.sockets_log_path else [])]
        return "".join(path.read_text(errors="replace") for path in paths)


@contextlib.contextmanager
def run_studio(
    var_dir: Path,
    services: dict,
    hook_token: str,
    env: dict[str, str] | None = None,
    *,
    srs_api_url: str | None = None,
) -> Iterator[Studio]:
    """nginx (front site, nginx-rtmp) + both gunicorn tiers on free ports
    until the block ends; `studio.url` is nginx's front. With
    `srs_api_url`, nginx also serves the studio over HTTPS (dev certificate
    for localhost) with SRS's WebRTC endpoints going to that URL:
    `studio.tls_url`, which the studio hands out in its WebRTC URLs."""
    port, sockets_port = free_port(), free_port()
    web, sockets = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sockets_port}"
    front = FrontSite(port=free_port(), web_url=web, sockets_url=sockets)
    base = f"http://127.0.0.1:{front.port}"
    if srs_api_url is not None:
        front.tls, front.tls_port = tls.dev_cert(var_dir, ("localhost",)), free_port()
        front.srs_api_url = srs_api_url
    nginx = start_nginx(
        var_dir,
        hook_url=f"{web}/hooks/nginx-rtmp?token={hook_token}",
        gcs_url="http://127.0.0.1:9",  # the CDN edge is not used here
        hls_dir=var_dir / f"hls-{port}",
        front=front,
    )
    full_env = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "golive-test-secret",
        "STUDIO_HOOK_TOKEN": hook_token,
        "STUDIO_PUBLIC_URL": base,
        "STUDIO_RTMP_URL": nginx.rtmp_url,
        "STUDIO_NGINX_CONTROL_URL": nginx.control_url,
        "STUDIO_MEDIA_ENGINE": "nginx-rtmp",
        "STUDIO_LOG_LEVEL": "INFO",
        # Every page's socket comes from 127.0.0.1 here.
        "STUDIO_CHAT_JOIN_RATE_ADDRESS": "100000 per minute",
        # nginx's X-Forwarded-* are trusted when it is in front (HTTPS).
        "STUDIO_PROXY_HOPS": "1" if front.tls else "0",
        # As `make dev` (devtools.runner.studio_env): WebRTC URLs name the HTTPS site.
        **({"STUDIO_WEBRTC_ORIGIN": nginx.tls_url} if front.tls else {}),
        **(env or {}),
    }
    try:
        with (
            stack.start_gunicorn(
                full_env, var_dir, port, workers=1, threads=16, name=f"gunicorn-golive-{port}"
            ) as gunicorn,
            stack.start_gunicorn(
                full_env,
                var_dir,
                sockets_port,
                name=f"sockets-golive-{sockets_port}",
                tier="sockets",
            ) as socket_tier,
        ):
            yield Studio(
                url=base,
                rtmp_url=nginx.rtmp_url,
                log_path=gunicorn.log_path,
                nginx=nginx,
                tls_url=nginx.tls_url,
                cert=front.tls.authority if front.tls else None,
                sockets_log_path=socket_tier.log_path,
            )
    finally:
        nginx.stop()


def login(base_url: str, email: str) -> requests.Session:
    """A requests session logged in through the real login page."""
    session = requests.Session()
    page = session.get(f"{base_url}/login", timeout=5).text
    reply = session.post(
        f"{base_url}/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(page)},
        timeout=5,
        allow_redirects=False,
    )
    assert reply.status_code in (302, 303), reply.text
    return session


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def ffmpeg_pids(needle: str) -> list[int]:
    """ffmpeg processes on this machine whose command line contains `needle`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ffmpeg") and any(needle.encode() in a for a in argv):
            pids.append(int(entry.name))
    return pids


def camera_recording(path: Path, seconds: int = 20, container: str = "matroska") -> bytes:
    """H.264 + Opus as a browser's MediaRecorder sends it: Matroska (Chromium)
    or fragmented MP4 (`container="mp4"`)."""
    output = ["-f", "matroska"]
    if container == "mp4":
        output = ["-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof"]
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x180:rate=15",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-c:a",
            "libopus",
            *output,
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path.read_bytes()


@dataclass
class Coturn:
    host: str
    port: int
    relay_ports: range
    secret: str

    @property
    def url(self) -> str:
        return f"turn:{self.host}:{self.port}?transport=udp"


@contextlib.contextmanager
def run_coturn(var_dir: Path, secret: str) -> Iterator[Coturn]:
    """turnserver with deploy/coturn/turnserver.conf, on loopback."""
    port, relay = free_port(), free_port()
    argv = [
        "turnserver",
        "-c",
        str(ROOT / "deploy" / "coturn" / "turnserver.conf"),
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        f"--min-port={relay}",
        f"--max-port={relay + 20}",
        f"--static-auth-secret={secret}",
        "--realm=studio.test",
        f"--pidfile={(var_dir / f'turn-{port}.pid').resolve()}",
    ]
    log_path = var_dir / "logs" / f"coturn-{port}.log"
    with start(executor(Tcp, argv, log_path, host="127.0.0.1", port=port, timeout=15), "coturn"):
        yield Coturn("127.0.0.1", port, range(relay, relay + 21), secret)
