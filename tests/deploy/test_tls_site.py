"""HTTPS in front of the studio (nginx/sites/tls.conf.template with the
development certificate from devtools/tls.py), in a real nginx, as `make dev`
runs it with SRS: pages reach gunicorn; the WHIP and webrtc:// URLs the API
hands out, and WHEP, reach SRS (a recorder standing in for its API) as handed
out, with the client's address forwarded; nothing else of SRS's API does.
(Going live through it in Chromium: tests/e2e/golive/test_tls.py.)"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from devtools import tls
from devtools.process import free_port
from tests.conftest import VAR
from tests.e2e.golive.harness import run_studio
from tests.srs_sdk import sdk_api_url

pytestmark = pytest.mark.e2e


class SrsApiRecorder:
    """Stands in for SRS's HTTP API (SRS cannot run here): records each
    request nginx forwards and answers as SRS 5 does (srs5-contract.md §4):
    WHIP/WHEP with 201, an SDP answer and a Location; the SDK's JSON publish
    API with 200 and `{"code":0,...}`; DELETE with 200."""

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
                    {
                        "method": self.command,
                        "path": self.path,
                        "body": body,
                        "headers": dict(self.headers),
                    }
                )
                if self.command == "DELETE":
                    self._reply(200, "text/plain", b"")
                elif self.path.startswith("/rtc/v1/publish/"):
                    answer = {"code": 0, "sdp": "v=0\r\n", "sessionid": "u:r", "server": "vid-1"}
                    self._reply(200, "application/json", json.dumps(answer).encode())
                else:
                    location = "/rtc/v1/whip/?action=delete&token=abcdefghi&app=live&stream=s"
                    self._reply(201, "application/sdp", b"v=0\r\n", location)

            def _reply(self, status: int, kind: str, body: bytes, location: str = "") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_DELETE = _record

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
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
    """The studio as `make dev` runs it with SRS: engine srs, the HTTPS site in
    front, SRS's WebRTC endpoints on that site going to the recorder. (The
    studio's own calls to SRS's API go to a closed port, so the recorder sees
    only what nginx forwards.)"""
    token = app.config["HOOK_TOKEN"]
    env = {"STUDIO_MEDIA_ENGINE": "srs", "STUDIO_SRS_API_URL": "http://127.0.0.1:9"}
    with run_studio(VAR / "golive-tls", services, token, env, srs_api_url=srs_api.url) as running:
        yield running


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_dev_certificate_names_the_machine_localhost_and_loopback(tmp_path):
    files = tls.dev_cert(tmp_path, ("studio-box", "localhost"))
    text = _openssl("x509", "-in", str(files.cert), "-noout", "-ext", "subjectAltName")
    assert "DNS:studio-box" in text
    assert "DNS:localhost" in text
    assert "IP Address:127.0.0.1" in text
    assert "OK" in _openssl("verify", "-CAfile", str(files.authority), str(files.cert))
    assert (files.key.stat().st_mode & 0o777) == 0o600
    first = files.cert.read_bytes()
    assert tls.dev_cert(tmp_path, ("studio-box", "localhost")).cert.read_bytes() == first  # kept
    renamed = tls.dev_cert(tmp_path, ("studio-box.lan", "localhost"))
    assert renamed.cert.read_bytes() != first  # the name changed: issued anew
    text = _openssl("x509", "-in", str(renamed.cert), "-noout", "-ext", "subjectAltName")
    assert "DNS:studio-box.lan" in text


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


def https(studio, method: str, url: str, **kwargs) -> requests.Response:
    return requests.request(method, url, verify=str(studio.cert), timeout=10, **kwargs)


def handed_out(studio, make_user, make_stream, make_token) -> tuple[dict, object]:
    """A new stream's ingest settings, as the API answers them over HTTPS."""
    owner = make_user()
    stream = make_stream(owner)
    reply = https(
        studio,
        "GET",
        f"{studio.tls_url}/api/v1/streams/{stream.public_id}",
        headers={"Authorization": f"Bearer {make_token(owner)}"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["ingest"], stream


def test_whip_url_the_api_hands_out_reaches_srs_as_handed_out(
    studio, srs_api, make_user, make_stream, make_token
):
    """The whip_url names the HTTPS site (not gunicorn's plain port, which has no
    /rtc/v1/): POSTing the offer to it exactly reaches SRS with path and query
    intact, and DELETE of the Location SRS returned ends the session there."""
    ingest, stream = handed_out(studio, make_user, make_stream, make_token)
    query = f"app=live&stream={stream.public_id}&secret={stream.stream_key}"
    assert ingest["protocols"] == ["rtmp", "webrtc", "srt"]
    assert ingest["whip_url"] == f"{studio.tls_url}/rtc/v1/whip/?{query}"
    srs_api.requests.clear()
    reply = https(
        studio,
        "POST",
        ingest["whip_url"],
        data="v=0\r\n",
        headers={"Content-Type": "application/sdp"},
    )
    assert reply.status_code == 201
    (offer,) = srs_api.requests
    assert (offer["method"], offer["path"]) == ("POST", f"/rtc/v1/whip/?{query}")
    assert offer["body"] == "v=0\r\n"
    stop = urllib.parse.urljoin(ingest["whip_url"], reply.headers["Location"])
    assert https(studio, "DELETE", stop).status_code == 200
    assert srs_api.requests[-1]["method"] == "DELETE"
    assert srs_api.requests[-1]["path"] == reply.headers["Location"]


def test_webrtc_url_the_api_hands_out_reaches_the_sdk_publish_api(
    studio, srs_api, make_user, make_stream, make_token
):
    """The SRS SDK turns the webrtc:// URL into the HTTPS site's
    /rtc/v1/publish/ (whatever page it runs on), which reaches SRS."""
    ingest, stream = handed_out(studio, make_user, make_stream, make_token)
    host = studio.tls_url.removeprefix("https://")
    webrtc = ingest["webrtc_url"]
    assert webrtc == (
        f"webrtc://{host}/live/{stream.public_id}?schema=https&secret={stream.stream_key}"
    )
    api = sdk_api_url(webrtc, page_scheme="http")
    assert api == sdk_api_url(webrtc, page_scheme="https")
    assert api == f"{studio.tls_url}/rtc/v1/publish/?schema=https&secret={stream.stream_key}"
    srs_api.requests.clear()
    offer = {"api": api, "tid": "1", "streamurl": webrtc, "clientip": None, "sdp": "v=0\r\n"}
    reply = https(studio, "POST", api, json=offer)
    assert reply.status_code == 200 and reply.json()["code"] == 0
    (seen,) = srs_api.requests
    assert seen["path"] == f"/rtc/v1/publish/?schema=https&secret={stream.stream_key}"
    assert json.loads(seen["body"])["streamurl"] == webrtc
    assert seen["headers"]["X-Real-IP"] == "127.0.0.1"


def test_whep_reaches_srs(studio, srs_api):
    """WHEP playback (POST /rtc/v1/whep/?app=..&stream=..) goes to SRS like WHIP."""
    srs_api.requests.clear()
    reply = https(
        studio,
        "POST",
        f"{studio.tls_url}/rtc/v1/whep/?app=live&stream=abc",
        data="v=0\r\n",
        headers={"Content-Type": "application/sdp"},
    )
    assert reply.status_code == 201
    assert [(r["method"], r["path"]) for r in srs_api.requests] == [
        ("POST", "/rtc/v1/whep/?app=live&stream=abc")
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/rtc/v1/play/"),
        ("POST", "/rtc/v1/whip-play/"),
        ("POST", "/rtc/v1/nack/"),
        ("GET", "/api/v1/clients/"),
        ("DELETE", "/api/v1/clients/abc"),
        ("GET", "/api/v1/streams/"),
        ("POST", "/hooks/srs?token=x"),
    ],
)
def test_the_rest_of_the_srs_api_and_the_hooks_stay_private(studio, srs_api, method, path):
    """SRS's other endpoints are not reachable through the HTTPS site: /rtc/
    answers 404, /api/v1/ is the studio's own API (404 for SRS's paths)."""
    srs_api.requests.clear()
    reply = https(studio, method, f"{studio.tls_url}{path}", data="{}")
    assert reply.status_code == 404
    assert srs_api.requests == []


def test_a_path_spelled_to_reach_another_srs_api_does_not(studio, srs_api):
    """`/api/v1/clients/../../../rtc/v1/whip/` is /rtc/v1/whip/ to nginx; SRS must
    get /rtc/v1/whip/, not the client's spelling (its clients API)."""
    srs_api.requests.clear()
    host, port = studio.tls_url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(studio.cert))
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request("POST", "/api/v1/clients/../../../rtc/v1/whip/?app=live", body="v=0")
        connection.getresponse().read()
    finally:
        connection.close()
    assert [r["path"] for r in srs_api.requests] == ["/rtc/v1/whip/?app=live"]
