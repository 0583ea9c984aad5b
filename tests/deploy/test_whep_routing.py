"""WebRTC playback of a stream held by a media node of a pool, through
deploy/nginx/studio.conf run by the machine's real nginx: the node map comes
from `flask nodes nginx-map` (a configured node, nodes an operator added),
each node's engine is a double recording what reaches it.

A WHEP request naming a node reaches that node's engine, and so does the
DELETE of its session; one naming no node (WHIP publishers, a single SRS)
reaches the default engine; an unknown node is 404 and reaches no engine.
"""

from __future__ import annotations

import http.server
import threading

import pytest
import requests

from devtools.process import free_port
from studio.models import Stream
from studio.streams import urls
from tests.deploy.envfiles import ROOT
from tests.deploy.test_nginx_conf import DOMAIN, Upstream, render, running_nginx, self_signed

SESSION = "/rtc/v1/whip/?action=delete&token=abcdefghi&app=live&stream=st1abc&session=u:r"


class Engine(http.server.ThreadingHTTPServer):
    """An engine's HTTP API as WebRTC uses it: a POST (offer) answers 201
    with its own name and the path it got, and SRS's session Location (a
    path without the node); a DELETE answers 200. Records every request."""

    def __init__(self, name: str):
        self.name = name
        self.seen: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.seen.append(f"{self.command} {self.path}")
                body = f"{server.name} {self.command} {self.path}".encode()
                self.send_response(201 if self.command == "POST" else 200)
                if self.command == "POST":
                    self.send_header("Location", SESSION)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_DELETE = do_OPTIONS = _answer

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def flask_nodes(app, *args: str):
    return app.test_cli_runner().invoke(args=["nodes", *args])


@pytest.fixture()
def pool(app, db, monkeypatch, tmp_path):
    """nginx with the map of a pool: node `a` configured (STUDIO_MEDIA_NODES),
    `b` and `include` (a word nginx's map reads as its own) added by an
    operator; `srs` stands for the default engine."""
    engines = {name: Engine(name) for name in ("srs", "a", "b")}
    web, sockets = Upstream("web"), Upstream("sockets")
    monkeypatch.setitem(
        app.config,
        "MEDIA_NODES",
        [{"id": "a", "api_url": engines["a"].origin, "ingest_host": "", "capacity": 0}],
    )
    for node_id in ("b", "include"):
        added = flask_nodes(app, "add", node_id, "--api-url", engines["b"].origin + "/")
        assert added.exit_code == 0, added.output
    generated = flask_nodes(app, "nginx-map")
    assert generated.exit_code == 0, generated.output
    (tmp_path / "media-nodes").mkdir()
    (tmp_path / "media-nodes" / "nodes.map").write_text(generated.output)

    self_signed(tmp_path)
    ports = {name: free_port() for name in ("http", "https", "private")}
    template = (ROOT / "deploy" / "nginx" / "studio.conf").read_text()
    srs = engines["srs"].origin.removeprefix("http://")
    conf = render(
        template, [web.address], sockets.address, srs, ports, tmp_path, hooks=[web.address]
    )
    try:
        with running_nginx(tmp_path, conf, ports["https"]):
            yield {"https": f"https://127.0.0.1:{ports['https']}", "tmp": tmp_path, **engines}
    finally:
        for server in (*engines.values(), web, sockets):
            server.shutdown()


def call(pool, method: str, path: str, **kwargs):
    return requests.request(
        method,
        pool["https"] + path,
        verify=str(pool["tmp"] / "fullchain.pem"),
        timeout=5,
        headers={"Host": DOMAIN},
        allow_redirects=False,
        **kwargs,
    )


def test_whep_naming_a_node_reaches_that_nodes_engine(pool):
    """The WHEP URL the studio hands out for a stream live on node a (and on
    node b) reaches that node's engine, and no other."""
    config = {"WEBRTC_ORIGIN": f"https://{DOMAIN}", "WHEP_URL": ""}
    for node_id in ("a", "b"):
        stream = Stream(public_id="st1abc", stream_key="k", status="live", node_id=node_id)
        whep = urls.whep_url(stream, config)
        assert whep == f"https://{DOMAIN}/rtc/v1/whep/?app=live&stream=st1abc&node={node_id}"
        reply = call(pool, "POST", whep.removeprefix(f"https://{DOMAIN}"), data="v=0\r\n")
        assert reply.status_code == 201
        assert reply.text == f"{node_id} POST /rtc/v1/whep/?app=live&stream=st1abc&node={node_id}"
    assert pool["a"].seen == ["POST /rtc/v1/whep/?app=live&stream=st1abc&node=a"]
    assert pool["b"].seen == ["POST /rtc/v1/whep/?app=live&stream=st1abc&node=b"]
    assert pool["srs"].seen == []


def test_the_session_location_keeps_the_node_so_its_delete_reaches_it(pool):
    """SRS answers a Location without the node; nginx adds it, and the
    browser's DELETE of the session reaches the node holding it."""
    reply = call(pool, "POST", "/rtc/v1/whep/?app=live&stream=st1abc&node=b", data="v=0")
    assert reply.headers["Location"] == SESSION + "&node=b"
    stop = call(pool, "DELETE", reply.headers["Location"])
    assert stop.status_code == 200
    assert pool["b"].seen[-1] == f"DELETE {SESSION}&node=b"
    assert pool["a"].seen == [] and pool["srs"].seen == []


def test_no_node_reaches_the_default_engine(pool):
    """WHEP of a stream on the default engine and every WHIP publish (the
    studio never names a node in them) reach the default engine, with the
    session's Location as SRS wrote it."""
    for path in (
        "/rtc/v1/whep/?app=live&stream=st1abc",
        "/rtc/v1/whip/?app=live&stream=st1abc&secret=k1",
        "/rtc/v1/whep/?app=live&stream=st1abc&node=",
    ):
        reply = call(pool, "POST", path, data="v=0")
        assert reply.text == f"srs POST {path}"
        assert reply.headers["Location"] == SESSION
    assert call(pool, "DELETE", SESSION).text == f"srs DELETE {SESSION}"
    assert pool["a"].seen == [] and pool["b"].seen == []


def test_a_node_named_like_a_map_keyword_is_routed(pool):
    """A node id nginx's map would read as a parameter (`include`) is
    escaped in the generated map and routed like any other."""
    reply = call(pool, "POST", "/rtc/v1/whep/?app=live&stream=s&node=include", data="v=0")
    assert reply.text == "b POST /rtc/v1/whep/?app=live&stream=s&node=include"


@pytest.mark.parametrize(
    "node",
    ["c", "default", "a%3B", "a;b", "a%00", "%24srs_node_api", "x" * 200],
)
def test_an_unknown_node_is_404_and_reaches_no_engine(pool, node):
    """A node not in the map (gone, mistyped, or made up) is 404: the
    default engine would not hold the stream either. The player then falls
    back to HLS."""
    for method, path in (
        ("POST", f"/rtc/v1/whep/?app=live&stream=st1abc&node={node}"),
        ("DELETE", f"{SESSION}&node={node}"),
    ):
        reply = call(pool, method, path, data="v=0")
        assert reply.status_code == 404, (method, path)
    assert pool["srs"].seen == [] and pool["a"].seen == [] and pool["b"].seen == []
