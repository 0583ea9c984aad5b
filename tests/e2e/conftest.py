"""The whole studio on this machine, for end-to-end tests.

Fixtures (names are stable; other test modules rely on them):

- `studio_stack` (session): a running studio, all on free ports —
  a throwaway PostgreSQL database (migrated with `flask db upgrade`), a
  private Redis, fake-gcs-server (the bucket), nginx (nginx-rtmp ingest with
  HLS into `hls_dir`, its /control and /stat, the CDN edge in front of
  the bucket, and the front site routing as production does), the web tier
  (gunicorn gthread: pages, API, callbacks), the socket tier (gunicorn
  gevent: `/ws/`), the RQ upload workers and the HLS watcher.
  It is a `StudioStack`:
    base_url      studio origin (nginx's front site), e.g. http://127.0.0.1:PORT
    rtmp_url      rtmp://127.0.0.1:PORT/live (publish to f"{rtmp_url}/{id}?secret={key}")
    edge_url      CDN edge (objects at f"{edge_url}/{object name}")
    gcs_url       the emulator (STORAGE_EMULATOR_HOST); bucket name in `bucket`
    control_url   nginx /control and /stat
    hls_dir       where nginx-rtmp writes HLS (files under hls_dir/"live")
    hook_token, database_url, redis_url, var_dir (logs in var_dir/"logs")
    app           a Flask app bound to the stack's database and Redis, for
                  seeding and assertions: `with studio_stack.app.app_context(): ...`
  and helpers:
    create_user(email=None, password=PASSWORD) -> email
    create_stream(email, title="...", reconnect_window=0)
                  -> StreamInfo(public_id, stream_key, publish_url)
    login(email) -> requests.Session logged in through the real pages
    stream_row(public_id) -> dict of the stream's status, disabled, broadcasts
    bucket_get(name) -> (status, headers, body) straight from the emulator
    edge_get(name) -> (status, headers, body) through the CDN edge
    stop_workers(kill=False) / start_workers()   fault injection (RQ workers)
    stop_watcher() / start_watcher()
    stop_bucket() / start_bucket()   the bucket unreachable, then back (same objects)
    log_text(name) -> a process log ("gunicorn", "sockets", "rq-workers", "watcher", "nginx")
- `browser_type_launch_args` (session): Debian's /usr/bin/chromium with the
  flags it needs here (pytest-playwright's `page`/`context` use it).
- `ffmpeg_publisher` (function): `start(url, seconds=None)` starts an ffmpeg
  RTMP publisher (testsrc + sine, H.264/AAC, 2 s GOP, realtime) and returns
  its Popen; every publisher still running is stopped after the test.

All tests under tests/e2e/ get the `e2e` marker.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from flask import Flask
from mirakuru import SimpleExecutor
from playwright.sync_api import expect
from sqlalchemy import select

from devtools import runner
from devtools.nginx import FrontSite, NginxService, start_nginx
from devtools.process import free_port
from devtools.services import (
    GcsService,
    create_database,
    ensure_postgres,
    start_fake_gcs,
    start_redis,
)
from studio import config as studio_config
from studio import create_app
from studio.auth import service as accounts
from studio.extensions import db
from studio.models import Broadcast, Stream
from studio.streams import service as streams
from tests import launch, stack
from tests.conftest import PASSWORD, VAR, csrf_token
from tests.stack import drop_database

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


# Web assertions wait up to this long (Playwright's default, 5 s, is short on
# a busy machine: a page's fetch may queue behind other work). A failing
# assertion still fails, only later.
expect.set_options(timeout=15_000)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium (Playwright must never download a browser here)."""
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": CHROMIUM_ARGS,
    }


def _get(url: str) -> tuple[int, dict, bytes]:
    reply = requests.get(url, timeout=10)
    return reply.status_code, reply.headers, reply.content


@dataclass(frozen=True)
class StreamInfo:
    public_id: str
    stream_key: str
    publish_url: str


_emails = itertools.count(1)


@dataclass
class StudioStack:
    base_url: str
    rtmp_url: str
    edge_url: str
    gcs_url: str
    bucket: str
    control_url: str
    hls_dir: Path
    hook_token: str
    database_url: str
    redis_url: str
    var_dir: Path
    app: Flask
    nginx: NginxService = field(repr=False)
    env: dict[str, str] = field(repr=False)
    handles: dict[str, SimpleExecutor] = field(default_factory=dict, repr=False)
    services: list = field(default_factory=list, repr=False)
    hook_url: str = ""  # the engine's callback URL (with its token)

    # --- seeding and reading --------------------------------------------------

    def create_user(self, email: str | None = None, password: str = PASSWORD) -> str:
        email = email or f"e2e{next(_emails)}-{secrets.token_hex(3)}@example.com"
        with self.app.app_context():
            accounts.create_user(db.session, email, password)
            db.session.commit()
        return email

    def create_stream(
        self, email: str, title: str = "E2E stream", reconnect_window: int = 0
    ) -> StreamInfo:
        """A stream of `email`; window 0 (an unpublish ends the broadcast at
        once) unless the test asks for a reconnect window."""
        with self.app.app_context():
            owner = accounts.get_user_by_email(db.session, email)
            stream = streams.create_stream(db.session, owner, title, reconnect_window)
            db.session.commit()
            info = StreamInfo(
                stream.public_id,
                stream.stream_key,
                f"{self.rtmp_url}/{stream.public_id}?secret={stream.stream_key}",
            )
            db.session.remove()
        return info

    def stream_row(self, public_id: str) -> dict:
        """The stream as the database has it now (fresh read)."""
        with self.app.app_context():
            stream = db.session.scalar(select(Stream).where(Stream.public_id == public_id))
            broadcasts = db.session.scalars(
                select(Broadcast).where(Broadcast.stream_id == stream.id).order_by(Broadcast.id)
            ).all()
            row = {
                "status": stream.status,
                "disabled": stream.disabled,
                "reconnect_deadline": stream.reconnect_deadline,
                "broadcasts": [
                    {
                        "id": b.id,
                        "ended_at": b.ended_at,
                        "end_reason": b.end_reason,
                        "replay_ready_at": b.replay_ready_at,
                        "segments": [(s.sequence, s.duration, s.object_name) for s in b.segments],
                    }
                    for b in broadcasts
                ],
            }
            db.session.remove()
        return row

    def login(self, email: str, password: str = PASSWORD) -> requests.Session:
        session = requests.Session()
        page = session.get(f"{self.base_url}/login", timeout=10).text
        reply = session.post(
            f"{self.base_url}/login",
            data={"email": email, "password": password, "csrf_token": csrf_token(page)},
            timeout=10,
            allow_redirects=False,
        )
        assert reply.status_code == 302, reply.text[:300]
        return session

    def bucket_get(self, name: str) -> tuple[int, dict, bytes]:
        return _get(f"{self.gcs_url}/{self.bucket}/{name}")

    def edge_get(self, name: str) -> tuple[int, dict, bytes]:
        return _get(f"{self.edge_url}/{name}")

    # --- fault injection --------------------------------------------------------

    def stop_workers(self, kill: bool = False) -> None:
        handle = self.handles["rq-workers"]
        handle.kill() if kill else handle.stop()

    def start_workers(self) -> None:
        self.handles["rq-workers"].start()

    def stop_watcher(self) -> None:
        self.handles["watcher"].stop()

    def start_watcher(self) -> None:
        self.handles["watcher"].start()

    def stop_bucket(self) -> None:
        """Make the bucket unreachable (fake-gcs-server stops; objects stay on disk)."""
        self._gcs().stop()

    def start_bucket(self) -> None:
        """Bring the bucket back on the same port with the same objects."""
        index = self.services.index(self._gcs())
        old = self.services[index]
        port = urllib.parse.urlsplit(old.url).port
        self.services[index] = start_fake_gcs(
            self.var_dir, port=port, bucket=old.bucket, backend="filesystem"
        )

    def _gcs(self) -> GcsService:
        return next(s for s in self.services if isinstance(s, GcsService))

    def log_text(self, name: str) -> str:
        path = self.nginx.log_path if name == "nginx" else self.handles[name].log_path
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        for handle in reversed(list(self.handles.values())):
            handle.stop()
        for service in reversed(self.services):
            service.stop()


def _start_stack(var_dir: Path) -> StudioStack:
    started: list = []
    handles: dict[str, SimpleExecutor] = {}
    try:
        postgres = ensure_postgres(VAR, database="postgres")
        name = f"studio_e2e_{secrets.token_hex(4)}"
        create_database(postgres.url, name)
        database_url = postgres.url.rsplit("/", 1)[0] + "/" + name
        redis_service = start_redis(var_dir)
        started.append(redis_service)
        # On disk, so the bucket can be stopped and started again (fault tests).
        gcs = start_fake_gcs(var_dir, backend="filesystem")
        started.append(gcs)
        port, sockets_port = free_port(), free_port()
        front = FrontSite(
            port=free_port(),
            web_url=f"http://127.0.0.1:{port}",
            sockets_url=f"http://127.0.0.1:{sockets_port}",
        )
        base_url = f"http://127.0.0.1:{front.port}"
        hook_token = secrets.token_urlsafe(16)
        nginx = start_nginx(
            var_dir,
            hook_url=f"{front.web_url}/hooks/nginx-rtmp?token={hook_token}",
            gcs_url=gcs.url,
            bucket=gcs.bucket,
            hls_dir=var_dir / "hls",
            front=front,
        )
        started.append(nginx)
        env = runner.studio_env(
            database_url=database_url,
            redis_url=redis_service.url,
            gcs=gcs,
            nginx=nginx,
            public_url=base_url,
            secret_key=secrets.token_urlsafe(32),
            hook_token=hook_token,
            # Rate limits have their own tests; here many logins come from 127.0.0.1.
            extra={
                "STUDIO_LOG_LEVEL": "INFO",
                "STUDIO_RATELIMIT_LOGIN": "1000 per minute",
                "STUDIO_RATELIMIT_REGISTER": "1000 per minute",
                "STUDIO_CHAT_JOIN_RATE_ADDRESS": "100000 per minute",
                # The webhook receivers of the tests listen on loopback.
                "STUDIO_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
                # So do the multistream targets (local nginx-rtmp servers).
                "STUDIO_TARGET_ALLOW_PRIVATE": "1",
            },
        )
        launch.migrate(env)
        handles["gunicorn"] = stack.start_gunicorn(env, var_dir, port, workers=2, threads=16)
        handles["sockets"] = stack.start_gunicorn(env, var_dir, sockets_port, tier="sockets")
        handles["rq-workers"] = stack.start_workers(env, var_dir, count=2)
        handles["watcher"] = stack.start_watcher(env, var_dir)
        app = create_app(_app_config(env))
        return StudioStack(
            base_url=base_url,
            rtmp_url=nginx.rtmp_url,
            edge_url=nginx.edge_url,
            gcs_url=gcs.url,
            bucket=gcs.bucket,
            control_url=nginx.control_url,
            hls_dir=nginx.hls_dir,
            hook_token=hook_token,
            database_url=database_url,
            redis_url=redis_service.url,
            var_dir=var_dir,
            app=app,
            nginx=nginx,
            env=env,
            handles=handles,
            services=[*started, _Dropper(postgres.url, name)],
            hook_url=f"{front.web_url}/hooks/nginx-rtmp?token={hook_token}",
        )
    except BaseException:
        for handle in handles.values():
            handle.kill()
        for service in reversed(started):
            service.stop()
        raise


def _app_config(env: dict[str, str]) -> dict:
    config = studio_config.from_environ(env)
    config["TESTING"] = True
    return config


@dataclass
class _Dropper:
    """Drops the throwaway database when the stack stops."""

    server_url: str
    name: str
    log_path: Path | None = None

    def stop(self) -> None:
        drop_database(self.server_url, self.name)


@pytest.fixture(scope="session")
def studio_stack():
    """The running studio (see the module docstring)."""
    var_dir = (VAR / f"e2e-{secrets.token_hex(3)}").resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    studio = _start_stack(var_dir)
    try:
        yield studio
    finally:
        studio.stop()
        with studio.app.app_context():
            db.engine.dispose()
        if os.environ.get("STUDIO_KEEP_E2E_VAR") != "1":
            for media in ("hls", "gcs"):  # logs stay for post-mortems
                shutil.rmtree(var_dir / media, ignore_errors=True)


FFMPEG_TESTSRC = [
    "-re",
    "-f",
    "lavfi",
    "-i",
    "testsrc=size=640x360:rate=30",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=44100",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-g",
    "60",
    "-keyint_min",
    "60",
    "-sc_threshold",
    "0",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    "-b:a",
    "64k",
]


class Publishers:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(
        self, url: str, seconds: float | None = None, keyframe_seconds: int = 2
    ) -> subprocess.Popen:
        """ffmpeg publishing a test pattern to `url` in real time, with a
        keyframe every `keyframe_seconds`."""
        frames = str(30 * keyframe_seconds)
        source = [
            frames if FFMPEG_TESTSRC[i - 1] in ("-g", "-keyint_min") else arg
            for i, arg in enumerate(FFMPEG_TESTSRC)
        ]
        argv = ["ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin", *source]
        if seconds is not None:
            argv += ["-t", str(seconds)]
        argv += ["-f", "flv", url]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"ffmpeg-{len(self.processes)}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # ffmpeg ends the stream cleanly
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture()
def ffmpeg_publisher(studio_stack):
    """Start ffmpeg RTMP publishers; all are stopped after the test."""
    publishers = Publishers(studio_stack.var_dir / "logs")
    yield publishers
    publishers.stop_all()
