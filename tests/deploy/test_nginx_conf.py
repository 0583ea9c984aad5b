"""deploy/nginx/studio.conf run by the machine's real nginx: TLS with HSTS and
security headers, the app behind it, websockets to the socket tier with a
per-address limit, SRS's WebRTC endpoints (WHIP, the SDK's publish API, WHEP;
nothing else of SRS) with the URLs the studio hands out, callbacks and metrics
not public but on the private port to the callback tier, no query strings in
the access log.

The compose hostnames (web, sockets, hooks, srs) and the certificate paths are replaced by a
local upstream and a self-signed certificate; everything else is the file as
deployed.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devtools.process import executor, free_port, start
from studio import config as studio_config
from studio.media import engines
from studio.models import Stream
from studio.streams import urls
from tests.deploy.envfiles import ROOT
from tests.polling import wait_until
from tests.srs_sdk import sdk_api_url
from tests.stack import Tcp

NGINX = "/usr/sbin/nginx"
DOMAIN = "studio.test"
WS_PER_ADDRESS = 2
API_ERRORS_MOUNT = "/etc/nginx/snippets/api-errors.conf"


class Upstream(http.server.ThreadingHTTPServer):
    """Answers every request with its own name and the path it received;
    requests for /ws/hold wait for `release` first (a socket held open)."""

    def __init__(self, name: str):
        self.name = name
        self.release = threading.Event()
        self.holding: set[int] = set()  # threads answering /ws/hold right now
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path.startswith("/ws/hold"):
                    server.holding.add(threading.get_ident())
                    server.release.wait(20)
                    server.holding.discard(threading.get_ident())
                body = f"{server.name} {self.command} {self.path}".encode()
                self.send_response(201 if server.name == "srs" else 200)
                for name in ("Host", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto"):
                    self.send_header(f"X-Seen-{name}", self.headers.get(name, ""))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = _answer

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


def render(
    template: str,
    webs: list[str],
    sockets: str,
    srs: str,
    ports: dict[str, int],
    tmp: Path,
    hooks: list[str] | None = None,
) -> str:
    """The deployed file with local addresses: `webs` and `hooks` stand for
    the replicas Docker's DNS returns for `web` and `hooks`."""
    conf = template.replace("${STUDIO_DOMAIN}", DOMAIN)
    conf = conf.replace("${STUDIO_WS_PER_ADDRESS}", str(WS_PER_ADDRESS))
    replicas = "\n    ".join(f"server {web} max_fails=0;" for web in webs)
    conf = conf.replace("server web:8000 max_fails=0;", replicas)
    # The web tier stands in for the callback tier when no hooks replica answers.
    backups = "\n    ".join(f"server {web} max_fails=0 backup;" for web in webs)
    conf = conf.replace("server web:8000 max_fails=0 backup;", backups)
    hook_replicas = "\n    ".join(f"server {hook} max_fails=0;" for hook in hooks or [])
    conf = conf.replace("server hooks:8002 max_fails=0;", hook_replicas)
    conf = conf.replace("server sockets:8001 max_fails=0;", f"server {sockets} max_fails=0;")
    conf = conf.replace("http://srs:1985", f"http://{srs}")
    conf = conf.replace("listen 8088;", f"listen 127.0.0.1:{ports['private']};")
    http_port, https_port = ports["http"], ports["https"]
    conf = re.sub(r"^\s*listen \[::\]:.*$", "", conf, flags=re.MULTILINE)
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    conf = conf.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl")
    conf = conf.replace(f"/etc/nginx/certs/live/{DOMAIN}", str(tmp))
    conf = conf.replace("/var/log/nginx/access.log", str(tmp / "access.log"))
    # The media-node map `flask nodes nginx-map` writes (none: a single SRS).
    conf = conf.replace("/etc/nginx/media-nodes/", f"{tmp}/media-nodes/")
    # Mounted there by docker-compose.yml.
    conf = conf.replace(API_ERRORS_MOUNT, str(ROOT / "nginx" / "api-errors.conf.template"))
    return conf


def self_signed(tmp: Path) -> None:
    """fullchain.pem and privkey.pem for DOMAIN in `tmp`."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={DOMAIN}",
            "-addext",
            f"subjectAltName=DNS:{DOMAIN},IP:127.0.0.1",
            "-keyout",
            str(tmp / "privkey.pem"),
            "-out",
            str(tmp / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def running_nginx(tmp: Path, conf: str, port: int) -> Iterator[None]:
    """The machine's nginx with `conf` as its only site, until the block ends."""
    (tmp / "studio.conf").write_text(conf)
    (tmp / "nginx.conf").write_text(
        f"worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{\n  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n"
        f"  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n"
        f"  include {tmp}/studio.conf;\n}}\n"
    )
    check = subprocess.run(
        [NGINX, "-t", "-p", str(tmp), "-c", str(tmp / "nginx.conf")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    argv = [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"]
    with start(
        executor(Tcp, argv, tmp / "nginx.log", host="127.0.0.1", port=port, timeout=10), "nginx"
    ):
        yield


def gone_replica() -> str:
    """A replica being replaced refuses connections: nothing listens on this port."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    self_signed(tmp)
    web, sockets, srs = Upstream("web"), Upstream("sockets"), Upstream("srs")
    hooks = Upstream("hooks")
    ports = {name: free_port() for name in ("http", "https", "private")}
    http_port, https_port = ports["http"], ports["https"]
    template = (ROOT / "deploy" / "nginx" / "studio.conf").read_text()
    conf = render(
        template,
        [gone_replica(), web.address],
        sockets.address,
        srs.address,
        ports,
        tmp,
        hooks=[gone_replica(), hooks.address],
    )
    try:
        with running_nginx(tmp, conf, https_port):
            yield {
                "https": f"https://127.0.0.1:{https_port}",
                "http": f"http://127.0.0.1:{http_port}",
                "private": f"http://127.0.0.1:{ports['private']}",
                "tmp": tmp,
                "sockets": sockets,
            }
    finally:
        hooks.shutdown()
        web.shutdown()
        sockets.release.set()
        sockets.shutdown()
        srs.shutdown()


def get(edge, path: str, method: str = "GET", **kwargs):
    return requests.request(
        method,
        edge["https"] + path,
        verify=str(edge["tmp"] / "fullchain.pem"),
        timeout=5,
        headers={"Host": DOMAIN},
        **kwargs,
    )


def test_https_pages_go_to_the_app_with_hsts(edge):
    """Pages are proxied to the web tier over TLS with HSTS and security headers."""
    reply = get(edge, "/streams")
    assert reply.status_code == 200
    assert reply.text == "web GET /streams"
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert "Server" not in reply.headers or "nginx/" not in reply.headers["Server"]


def test_only_the_embeddable_player_may_be_framed(edge):
    """/embed/ goes to the app without X-Frame-Options (other sites frame it),
    still with HSTS and the other headers; every other page keeps DENY."""
    reply = get(edge, "/embed/abc")
    assert reply.status_code == 200
    assert reply.text == "web GET /embed/abc"
    assert "X-Frame-Options" not in reply.headers
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert get(edge, "/embedded").headers["X-Frame-Options"] == "DENY"
    assert get(edge, "/watch/abc").headers["X-Frame-Options"] == "DENY"


def test_plain_http_redirects_to_https(edge):
    """http:// answers 301 to the https:// URL (ACME challenges excepted)."""
    reply = requests.get(
        edge["http"] + "/login", headers={"Host": DOMAIN}, allow_redirects=False, timeout=5
    )
    assert reply.status_code == 301
    assert reply.headers["Location"] == f"https://{DOMAIN}/login"


def handed_out(engine: str = "srs") -> dict:
    """The ingest settings the studio hands out with the production settings
    (docker-compose.yml passes the optional ones empty)."""
    config = studio_config.from_environ(
        {
            "STUDIO_PUBLIC_URL": f"https://{DOMAIN}",
            "STUDIO_MEDIA_ENGINE": engine,
            "STUDIO_WEBRTC_ORIGIN": "",
            "STUDIO_WEBRTC_HOST": "",
            "STUDIO_WHIP_URL": "",
        }
    )
    protocols = engines.build(config).ingest_protocols
    return urls.ingest(Stream(public_id="st1abc", stream_key="k1-Key"), config, protocols)


def at_edge(edge, url: str) -> str:
    """A URL handed out for https://studio.test, as this test's nginx serves it."""
    assert url.startswith(f"https://{DOMAIN}/"), url
    return url.removeprefix(f"https://{DOMAIN}")


def test_whip_url_handed_out_reaches_srs_as_handed_out(edge):
    """POST to the exact whip_url the studio hands out in production reaches SRS
    with its path and query (app, stream, secret) intact; DELETE of the session
    does too."""
    whip = handed_out()["whip_url"]
    assert whip == f"https://{DOMAIN}/rtc/v1/whip/?app=live&stream=st1abc&secret=k1-Key"
    reply = get(edge, at_edge(edge, whip), "POST", data="v=0\r\n")
    assert reply.status_code == 201
    assert reply.text == "srs POST /rtc/v1/whip/?app=live&stream=st1abc&secret=k1-Key"
    stop = "/rtc/v1/whip/?action=delete&token=abcdefghi&app=live&stream=st1abc&session=u:r"
    assert get(edge, stop, "DELETE").text == f"srs DELETE {stop}"


def test_webrtc_url_handed_out_reaches_the_sdk_publish_api(edge):
    """The SRS SDK turns the handed-out webrtc:// URL into
    https://studio.test:443/rtc/v1/publish/?... (whatever page it runs on),
    and nginx passes that to SRS with the query intact."""
    webrtc = handed_out()["webrtc_url"]
    assert webrtc == f"webrtc://{DOMAIN}/live/st1abc?schema=https&secret=k1-Key"
    for page_scheme in ("http", "https"):
        api = sdk_api_url(webrtc, page_scheme)
        assert api == f"https://{DOMAIN}:443/rtc/v1/publish/?schema=https&secret=k1-Key"
    offer = {"api": api, "streamurl": webrtc, "clientip": None, "sdp": "v=0\r\n"}
    reply = get(edge, at_edge(edge, api.replace(":443", "")), "POST", json=offer)
    assert reply.text == "srs POST /rtc/v1/publish/?schema=https&secret=k1-Key"


def test_whep_playback_reaches_srs(edge):
    """The whep_url the studio hands out in production (low-latency playback)
    is routed to SRS like WHIP, and so is the DELETE of its session."""
    config = studio_config.from_environ(
        {"STUDIO_PUBLIC_URL": f"https://{DOMAIN}", "STUDIO_MEDIA_ENGINE": "srs"}
    )
    stream = Stream(public_id="st1abc", stream_key="k1-Key")
    assert "webrtc" in engines.build(config).playback_protocols
    whep = urls.whep_url(stream, config)
    assert whep == f"https://{DOMAIN}/rtc/v1/whep/?app=live&stream=st1abc"
    reply = get(edge, at_edge(edge, whep), "POST", data="v=0\r\n")
    assert reply.status_code == 201
    assert reply.text == "srs POST /rtc/v1/whep/?app=live&stream=st1abc"
    stop = "/rtc/v1/whip/?action=delete&token=abcdefghi&app=live&stream=st1abc&session=u:r"
    assert get(edge, stop, "DELETE").text == f"srs DELETE {stop}"


@pytest.mark.parametrize(
    "path",
    [
        "/rtc/v1/play/?app=live",
        "/rtc/v1/whip-play/",
        "/rtc/v1/nack/",
        "/rtc/v1/whip/x",
        "/rtc/v1/whip",
        "/rtc/v1/publish/extra/",
        "/rtc/v2/whip/",
    ],
)
def test_other_srs_rtc_endpoints_are_not_public(edge, path):
    """Only WHIP, the SDK's publish API and WHEP reach SRS; its other /rtc/ paths are 404."""
    reply = get(edge, path, "POST", data="{}")
    assert reply.status_code == 404
    assert not reply.text.startswith("srs ")


def test_srs_http_api_is_not_public(edge):
    """/api/v1/... is the studio's own API (web), never SRS's: kicking a client
    (DELETE /api/v1/clients/{id}) or listing streams cannot reach SRS."""
    for method, path in [
        ("GET", "/api/v1/clients/"),
        ("DELETE", "/api/v1/clients/abc"),
        ("GET", "/api/v1/streams/"),
        ("GET", "/api/v1/summaries"),
    ]:
        assert get(edge, path, method).text.startswith("web "), path


@pytest.mark.parametrize(
    "raw_path",
    [
        "/api/v1/clients/../../../rtc/v1/whip/?app=live",
        "/rtc/v1/x/../whip/?app=live",
        "/rtc/v1/whip/./?app=live",
        "/api/v1/clients/%2e%2e/%2e%2e/%2e%2e/rtc/v1/whip/?app=live",
    ],
)
def test_srs_gets_the_endpoint_path_not_the_clients_spelling(edge, raw_path):
    """A path nginx normalises into /rtc/v1/whip/ reaches SRS as /rtc/v1/whip/:
    SRS would otherwise route `/api/v1/clients/../..` as its private clients API."""
    context = ssl.create_default_context(cafile=str(edge["tmp"] / "fullchain.pem"))
    host, port = edge["https"].removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    try:
        connection.request("POST", raw_path, body="v=0\r\n", headers={"Host": DOMAIN})
        reply = connection.getresponse()
        text = reply.read().decode()
    finally:
        connection.close()
    assert text == "srs POST /rtc/v1/whip/?app=live"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH"])
def test_webrtc_endpoints_take_only_the_contracts_methods(edge, method):
    """POST (offer), DELETE (stop) and OPTIONS (CORS) pass; nothing else reaches SRS."""
    reply = get(edge, "/rtc/v1/whip/?app=live&stream=abc", method)
    assert reply.status_code == 403
    assert not reply.text.startswith("srs ")


def test_callbacks_and_metrics_are_not_public(edge):
    """/hooks/ and /metrics are 404 from the internet (SRS and Prometheus use web:8000)."""
    assert get(edge, "/hooks/srs?token=x", "POST").status_code == 404
    assert get(edge, "/metrics").status_code == 404


def test_access_log_has_no_query_strings(edge):
    """The WHIP stream key in ?secret= never reaches the access log."""
    get(edge, "/rtc/v1/whip/?app=live&stream=abc&secret=SeCrEtKeY42", "POST", data="v=0")
    log = (edge["tmp"] / "access.log").read_text()
    assert "/rtc/v1/whip/" in log
    assert "SeCrEtKeY42" not in log


def test_private_hook_port_retries_a_replica_that_refuses(edge):
    """SRS's callbacks on the private port reach a live replica of the
    callback tier every time, although the other replica refuses connections
    (as one does while it is replaced)."""
    for n in range(20):
        reply = requests.post(
            f"{edge['private']}/hooks/srs?token=t", json={"action": "on_publish", "n": n}, timeout=5
        )
        assert reply.status_code == 200, reply.text
        assert reply.text == "hooks POST /hooks/srs?token=t"
    assert requests.get(f"{edge['private']}/streams", timeout=5).status_code == 404


def test_private_hook_port_falls_back_to_the_web_tier_without_hooks_replicas(tmp_path):
    """With every callback-tier replica refusing connections (the service
    down or all of it being replaced), SRS's callbacks are answered by the web
    tier instead of failing."""
    self_signed(tmp_path)
    web, others = Upstream("web"), Upstream("others")
    ports = {name: free_port() for name in ("http", "https", "private")}
    template = (ROOT / "deploy" / "nginx" / "studio.conf").read_text()
    conf = render(
        template,
        [web.address],
        others.address,
        others.address,
        ports,
        tmp_path,
        hooks=[gone_replica(), gone_replica()],
    )
    try:
        with running_nginx(tmp_path, conf, ports["private"]):
            for n in range(5):
                reply = requests.post(
                    f"http://127.0.0.1:{ports['private']}/hooks/srs?token=t",
                    json={"action": "on_publish", "n": n},
                    timeout=5,
                )
                assert reply.status_code == 200, reply.text
                assert reply.text == "web POST /hooks/srs?token=t"
    finally:
        web.shutdown()
        others.shutdown()


def _raw(edge, method: str, path: str, headers: dict[str, str]) -> tuple[int, str, str]:
    """Send a request line and headers as given (no body): status, type, text."""
    context = ssl.create_default_context(cafile=str(edge["tmp"] / "fullchain.pem"))
    host, port = edge["https"].removeprefix("https://").split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": DOMAIN, **headers}.items():
            connection.putheader(name, value)
        connection.endheaders()
        reply = connection.getresponse()
        return reply.status, reply.getheader("Content-Type", ""), reply.read().decode()
    finally:
        connection.close()


def test_what_nginx_refuses_for_the_api_is_json(edge):
    """A request line nginx cannot read (a %00 in the path) and a body over
    its limit are answered, for /api/, in the API's JSON error shape; pages
    keep nginx's own page."""
    status, kind, text = _raw(edge, "GET", "/api/v1/streams/%00", {})
    assert (status, kind) == (400, "application/json")
    assert json.loads(text) == {
        "error": "Malformed request: its path or headers could not be read.",
        "fields": {},
    }
    too_big = {"Content-Type": "application/json", "Content-Length": str(2 * 1024 * 1024)}
    status, kind, text = _raw(edge, "POST", "/api/v1/streams", too_big)
    assert (status, kind) == (413, "application/json")
    assert json.loads(text) == {"error": "Request body too large.", "fields": {}}

    status, kind, text = _raw(edge, "GET", "/watch/%00", {})
    assert (status, kind) == (400, "text/html") and "<html>" in text
    status, kind, _ = _raw(edge, "POST", "/streams", too_big)
    assert (status, kind) == (413, "text/html")
    assert get(edge, "/_refused/400").status_code == 404  # internal: not reachable from outside


def test_rendering_left_no_compose_names():
    """The test's rendering replaced every compose-only name and port (else the
    tests above would not be testing the deployed file's rules)."""
    template = (ROOT / "deploy" / "nginx" / "studio.conf").read_text()
    for needle in (
        "server web:8000 max_fails=0;",
        "server sockets:8001 max_fails=0;",
        "server hooks:8002 max_fails=0;",
        "server web:8000 max_fails=0 backup;",
        "${STUDIO_WS_PER_ADDRESS}",
        "http://srs:1985",
        "/etc/nginx/media-nodes/",
        API_ERRORS_MOUNT,
        "listen 8088;",
        "listen 80;",
        "listen 443 ssl",
    ):
        assert needle in template, needle


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/ws/streams/abc", "GET"),
        ("/rtc/v1/whip/?app=live&stream=abc&secret=k1", "POST"),
        ("/rtc/v1/publish/?secret=k1", "POST"),
        ("/rtc/v1/whep/?app=live&stream=abc", "POST"),
    ],
)
def test_websockets_and_whip_keep_the_forwarded_headers(edge, path, method):
    """A location that sets any proxy header inherits none from the server:
    the websocket and WebRTC locations still pass Host (the studio compares it
    with Origin) and the client address (session binding; SRS's `ip`)."""
    reply = get(edge, path, method, data="v=0" if method == "POST" else None)
    assert reply.headers["X-Seen-Host"] == DOMAIN
    assert reply.headers["X-Seen-X-Forwarded-For"] == "127.0.0.1"
    assert reply.headers["X-Seen-X-Real-IP"] == "127.0.0.1"
    assert reply.headers["X-Seen-X-Forwarded-Proto"] == "https"


def test_websockets_go_to_the_socket_tier_and_pages_to_the_web_tier(edge):
    """/ws/ is served by the socket tier, everything else by the web tier."""
    assert get(edge, "/ws/streams/abc").text == "sockets GET /ws/streams/abc"
    assert get(edge, "/watch/abc").text == "web GET /watch/abc"


def test_sockets_over_the_per_address_limit_go_to_the_refusal(edge):
    """With WS_PER_ADDRESS sockets of this address open, the next one is
    handed to the socket tier's /ws/refused (which closes it with 1013);
    once they close, a socket gets through again."""
    sockets = edge["sockets"]
    sockets.release.clear()
    with ThreadPoolExecutor(WS_PER_ADDRESS) as pool:
        held = [pool.submit(get, edge, "/ws/hold") for _ in range(WS_PER_ADDRESS)]
        try:
            wait_until(lambda: len(sockets.holding) == WS_PER_ADDRESS, what="sockets held")
            assert get(edge, "/ws/streams/abc").text == "sockets GET /ws/refused"
        finally:
            sockets.release.set()
        assert all(reply.result().text == "sockets GET /ws/hold" for reply in held)
    assert get(edge, "/ws/streams/abc").text == "sockets GET /ws/streams/abc"
