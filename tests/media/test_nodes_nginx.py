"""Two real nginx-rtmp servers as two media nodes of the studio (served on
a local port for their callbacks): an ffmpeg publisher lands on the node it
publishes to, that node's own stat lists it, and a drop reaches it there."""

from __future__ import annotations

import subprocess
import threading

import pytest
from werkzeug.serving import make_server

from devtools.nginx import start_nginx
from studio.media import engines
from studio.models import Stream
from studio.streams import service
from tests.polling import poll

TOKEN = "test-hook-token"


@pytest.fixture()
def served(app, db):
    """The app on a local port (the nodes' callbacks reach it there)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture()
def two_nodes(served, use_engine, tmp_path):
    """Nodes `a` and `b`: each an nginx-rtmp whose hook URL names it."""
    started = {}
    try:
        for name in ("a", "b"):
            started[name] = start_nginx(
                tmp_path / name,
                hook_url=f"{served}/hooks/nginx-rtmp?token={TOKEN}&node={name}",
                gcs_url="http://127.0.0.1:9",
            )
        use_engine(
            "nginx-rtmp",
            MEDIA_NODES=[
                {"id": name, "api_url": node.control_url, "ingest_host": "", "capacity": 0}
                for name, node in started.items()
            ],
        )
        yield started
    finally:
        for node in started.values():
            node.stop()


def ffmpeg_publisher(rtmp_url: str) -> subprocess.Popen:
    argv = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=15",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-t", "60",
        "-f", "flv", rtmp_url,
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_publisher_lands_on_its_node_and_is_dropped_there(db, make_stream, two_nodes):
    """Publishing to node b: the stream is live on b, b's stat lists it and
    a's does not; rotating the key drops it at b."""
    stream = make_stream()
    rtmp = two_nodes["b"].rtmp_url + f"/{stream.public_id}?secret={stream.stream_key}"
    publisher = ffmpeg_publisher(rtmp)
    try:

        def live_on_b():
            db.session.expire_all()
            row = db.session.get(Stream, stream.id)
            return row if row.status == "live" and row.node_id == "b" else None

        assert poll(live_on_b, 20), "the publish never reached the studio through node b"
        names = poll(lambda: [p.stream_name for p in engines.for_node("b").publishers()], 10)
        assert names == [stream.public_id]
        assert engines.for_node("a").publishers() == []
        service.rotate_key(db.session, db.session.get(Stream, stream.id))
        db.session.commit()
        assert poll(lambda: engines.for_node("b").publishers() == [], 10)
    finally:
        publisher.kill()
        publisher.wait()
