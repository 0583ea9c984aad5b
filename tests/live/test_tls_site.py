"""HTTPS in front of the studio (nginx/sites/tls.conf.template with the
development certificate from devtools/tls.py), in a real nginx: pages and the
ingest websocket reach gunicorn, /rtc/v1/whip/ and nothing else of SRS's API
reaches SRS, with the client's address forwarded. (Going live through it in
Chromium: tests/e2e/golive/test_tls.py.)"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from devtools import stack, tls
from tests.conftest import VAR
from tests.e2e.golive.harness import run_studio

pytestmark = pytest.mark.e2e


class SrsApiRecorder:
    """Stands in for SRS's HTTP API (SRS cannot run here): records each
    request nginx forwards and answers WHIP like SRS (201 + Location)."""

    def __init__(self):
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                recorder.requests.append(
                    {"method": self.command, "path": self.path, "body": body,
                     "headers": dict(self.headers)}
                )  # fmt: skip
                self.send_response(201)
                self.send_header("Content-Type", "application/sdp")
                self.send_header("Location", "/rtc/v1/whip/?action=delete&token=abcdefghi")
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"v=0\r\n\r\n"[:6])

            do_POST = do_GET = do_DELETE = _record

        self.server = ThreadingHTTPServer(("127.0.0.1", stack.free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def srs_api():
    recorder = SrsApiRecorder()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="module")
def studio(app, services, srs_api):
    token = app.config["HOOK_TOKEN"]
    with run_studio(VAR / "golive-tls", services, token, srs_api_url=srs_api.url) as running:
        yield running


def test_dev_certificate_names_the_machine_localhost_and_loopback(tmp_path):
    files = tls.self_signed_cert(tmp_path, ("studio-box", "localhost"))
    text = tls._openssl("x509", "-in", str(files.cert), "-noout", "-ext", "subjectAltName")
    assert "DNS:studio-box" in text
    assert "DNS:localhost" in text
    assert "IP Address:127.0.0.1" in text
    assert (files.key.stat().st_mode & 0o777) == 0o600
    again = tls.self_signed_cert(tmp_path, ("studio-box", "localhost"))
    assert again.cert.read_bytes() == files.cert.read_bytes()  # kept, not regenerated


def test_pages_are_served_over_https_with_the_dev_certificate(studio):
    reply = requests.get(f"{studio.tls_url}/login", verify=str(studio.cert), timeout=10)
    assert reply.status_code == 200
    assert "Log in" in reply.text


def test_whip_reaches_srs_with_the_client_address(studio, srs_api):
    """The WHIP POST keeps its query (app, stream, secret) and carries
    X-Forwarded-For/X-Real-IP, which SRS reports as the publisher's ip."""
    srs_api.requests.clear()
    reply = requests.post(
        f"{studio.tls_url}/rtc/v1/whip/?app=live&stream=abc&secret=k1",
        data="v=0\r\n",
        headers={"Content-Type": "application/sdp"},
        verify=str(studio.cert),
        timeout=10,
    )
    assert reply.status_code == 201
    assert reply.headers["Location"].startswith("/rtc/v1/whip/?action=delete")
    (seen,) = srs_api.requests
    assert seen["method"] == "POST"
    assert seen["path"] == "/rtc/v1/whip/?app=live&stream=abc&secret=k1"
    assert seen["body"] == "v=0\r\n"
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["X-Real-IP"] == "127.0.0.1"


@pytest.mark.parametrize("path", ["/rtc/v1/publish/", "/rtc/v1/play/", "/hooks/srs?token=x"])
def test_the_rest_of_the_srs_api_and_the_hooks_stay_private(studio, srs_api, path):
    srs_api.requests.clear()
    reply = requests.post(f"{studio.tls_url}{path}", data="{}", verify=str(studio.cert), timeout=10)
    assert reply.status_code == 404
    assert srs_api.requests == []
