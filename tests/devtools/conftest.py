"""Fixtures for the tests of devtools: real services, started once."""

from __future__ import annotations

import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devtools.nginx import NginxService, start_nginx
from devtools.services import GcsService, start_fake_gcs
from studio.storage.gcs import make_client
from tests.polling import poll


class HookReceiver:
    """A stand-in for the studio's hook endpoint: records every request and
    answers with `status` (tests change it)."""

    path = "/hooks/nginx-rtmp?token=hook-token"

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """A request handler class bound to this receiver."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "form": form})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def calls(self, name: str) -> list[dict]:
        """The requests about one stream name, oldest first."""
        with self._lock:
            return [r for r in self.requests if r["form"].get("name") == name]

    def wait_for(self, name: str, call: str, timeout: float = 5.0) -> dict:
        """The first request with form fields call=`call` and name=`name`."""

        def first() -> dict | None:
            calls = (r for r in self.calls(name) if r["form"].get("call") == call)
            return next(calls, None)

        request = poll(first, timeout, interval=0.02)
        if request is None:
            raise AssertionError(f"no {call} hook for {name}: {self.calls(name)}")
        return request

    def __enter__(self) -> HookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _publish(rtmp_url: str, seconds: float) -> subprocess.Popen:
    """An ffmpeg test publisher (2 s keyframes, so 2 s HLS fragments)."""
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "60",
        "-c:a",
        "aac",
        "-t",
        str(seconds),
        "-f",
        "flv",
        rtmp_url,
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def upload(
    gcs: GcsService, name: str, data: bytes, content_type: str, cache_control: str | None = None
) -> None:
    """One object into the emulator's bucket, through the storage client."""
    blob = make_client(gcs.url).bucket(gcs.bucket).blob(name)
    blob.cache_control = cache_control
    blob.upload_from_string(data, content_type=content_type)


@pytest.fixture
def publish() -> Callable[[str, float], subprocess.Popen]:
    """Start an ffmpeg publisher: publish(rtmp_url, seconds) -> Popen."""
    return _publish


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State directory shared by the session's services."""
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def gcs(var_dir: Path) -> Iterator[GcsService]:
    """fake-gcs-server (memory backend) with the default bucket."""
    service = start_fake_gcs(var_dir)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def hooks() -> Iterator[HookReceiver]:
    """The hook receiver for the whole session (see `hook`)."""
    with HookReceiver() as receiver:
        yield receiver


@pytest.fixture
def hook(hooks: HookReceiver) -> Iterator[HookReceiver]:
    """The hook receiver, answering 200 unless the test says otherwise."""
    hooks.status = 200
    yield hooks
    hooks.status = 200


@pytest.fixture(scope="session")
def nginx(var_dir: Path, gcs: GcsService, hooks: HookReceiver) -> Iterator[NginxService]:
    """nginx-rtmp + control + CDN edge, hooks going to `hooks`."""
    service = start_nginx(
        var_dir, hook_url=hooks.url + hooks.path, gcs_url=gcs.url, bucket=gcs.bucket
    )
    yield service
    service.stop()
