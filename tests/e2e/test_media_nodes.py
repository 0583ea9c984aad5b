"""Two media nodes on this machine, each a real nginx-rtmp with its own HLS
directory, watcher and upload workers (`tests/stack.py`, `start_node`), behind
one studio (STUDIO_MEDIA_NODES): ffmpeg publishers land on both; each
stream's segments reach the bucket through its own node's workers; drops,
stats and the reconciler reach the right node; a dead node ends only its
own streams; a draining node takes no new publisher."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from devtools import runner
from devtools.process import free_port
from devtools.services import create_database, ensure_postgres, start_fake_gcs, start_redis
from studio import create_app, ingest_history
from studio.extensions import db
from studio.media import engines
from studio.media import nodes as media_nodes
from studio.models import Stream
from studio.storage import layout
from studio.streams import service as streams
from tests import launch, stack
from tests.conftest import VAR
from tests.e2e.conftest import Publishers, StreamInfo, StudioStack, _app_config, _Dropper
from tests.polling import poll, wait_until
from workers import reconcile as reconciler

NODES = ("node-1", "node-2")
# Generous: two nodes' ffmpeg, nginx and workers share a busy machine.
WAIT = 60


@dataclass
class NodesStack:
    """The control plane (`studio`: database, Redis, bucket, web tier, the
    shared workers) and the media nodes by id."""

    studio: StudioStack
    nodes: dict[str, stack.RunningNode]

    def publish_url(self, node_id: str, stream: StreamInfo) -> str:
        rtmp_url = self.nodes[node_id].nginx.rtmp_url
        return f"{rtmp_url}/{stream.public_id}?secret={stream.stream_key}"

    def local_files(self, node_id: str, public_id: str) -> list[str]:
        live = self.nodes[node_id].nginx.hls_dir / "live"
        return sorted(p.name for p in live.glob(f"{public_id}-*.ts"))

    def stream_node(self, public_id: str) -> str | None:
        with self.studio.app.app_context():
            node_id = db.session.scalar(select(Stream.node_id).where(Stream.public_id == public_id))
            db.session.remove()
        return node_id

    def segments(self, public_id: str) -> list[str]:
        """Object names of the stream's segments recorded after upload."""
        row = self.studio.stream_row(public_id)
        return [name for b in row["broadcasts"] for (_, _, name) in b["segments"]]

    def live_segment_names(self, public_id: str) -> list[str]:
        """What a viewer's player reads: the segments the live playlist in
        the bucket (the CDN's origin) names."""
        status, _, body = self.studio.bucket_get(layout.live_playlist(public_id))
        if status != 200:
            return []
        return [line for line in body.decode().splitlines() if line and not line.startswith("#")]

    def reconcile(self, now: float) -> reconciler.Report:
        with self.studio.app.app_context():
            return reconciler.reconcile(now=now)


def _start(var_dir: Path) -> NodesStack:
    started: list = []
    try:
        postgres = ensure_postgres(VAR, database="postgres")
        name = f"studio_nodes_{secrets.token_hex(4)}"
        create_database(postgres.url, name)
        started.append(_Dropper(postgres.url, name))
        redis_service = start_redis(var_dir)
        started.append(redis_service)
        gcs = start_fake_gcs(var_dir, backend="memory")
        started.append(gcs)
        port, token = free_port(), secrets.token_urlsafe(16)
        hook_url = f"http://127.0.0.1:{port}/hooks/nginx-rtmp?token={token}"
        control_ports = {node_id: free_port() for node_id in NODES}
        pool = [
            {
                "id": node_id,
                "api_url": f"http://127.0.0.1:{control_ports[node_id]}",
                "ingest_host": "127.0.0.1",
                "capacity": 0,
            }
            for node_id in NODES
        ]
        env = runner.studio_env(
            database_url=postgres.url.rsplit("/", 1)[0] + "/" + name,
            redis_url=redis_service.url,
            gcs=gcs,
            nginx=None,
            public_url=f"http://127.0.0.1:{port}",
            secret_key=secrets.token_urlsafe(32),
            hook_token=token,
            extra={
                # The control plane has no media directory of its own.
                "STUDIO_HLS_DIR": str(var_dir / "hls-control-plane"),
                "STUDIO_LOG_LEVEL": "INFO",
                "STUDIO_MEDIA_NODES": json.dumps(pool),
                # No engine at the implicit node's address: whatever asks
                # `default` instead of a stream's node fails.
                "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
            },
        )
        launch.migrate(env)
        handles = {"gunicorn": stack.start_gunicorn(env, var_dir, port, workers=1, threads=8)}
        started.append(handles["gunicorn"])
        # Replays of the default node, thumbnails, webhooks: shared queues.
        handles["rq-workers"] = stack.start_workers(env, var_dir, 1)
        started.append(handles["rq-workers"])
        nodes = {}
        for node_id in NODES:
            nodes[node_id] = stack.start_node(
                env,
                var_dir,
                node_id,
                hook_url=hook_url,
                workers=1,
                http_port=control_ports[node_id],
            )
            started.append(nodes[node_id])
        first = nodes[NODES[0]].nginx
        studio = StudioStack(
            base_url=f"http://127.0.0.1:{port}",
            rtmp_url=first.rtmp_url,
            edge_url=first.edge_url,
            gcs_url=gcs.url,
            bucket=gcs.bucket,
            control_url="",
            hls_dir=first.hls_dir,
            hook_token=token,
            database_url=env["DATABASE_URL"],
            redis_url=redis_service.url,
            var_dir=var_dir,
            app=create_app(_app_config(env)),
            nginx=first,
            env=env,
            services=started,
            hook_url=hook_url,
        )
        return NodesStack(studio, nodes)
    except BaseException:
        for service in reversed(started):
            service.stop()
        raise


@pytest.fixture(scope="module")
def two_nodes():
    """The studio with media nodes node-1 and node-2 (see the module docstring)."""
    var_dir = (VAR / f"e2e-nodes-{secrets.token_hex(3)}").resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    stack = _start(var_dir)
    try:
        yield stack
    finally:
        stack.studio.stop()
        with stack.studio.app.app_context():
            db.engine.dispose()
        shutil.rmtree(var_dir / "nodes", ignore_errors=True)


@pytest.fixture()
def publishers(two_nodes):
    started = Publishers(two_nodes.studio.var_dir / "logs")
    yield started
    started.stop_all()


def _go_live(two_nodes, publishers, node_id: str, reconnect_window: int = 0) -> StreamInfo:
    """A new stream published by ffmpeg to `node_id`, once it is live there."""
    studio = two_nodes.studio
    stream = studio.create_stream(studio.create_user(), reconnect_window=reconnect_window)
    publishers.start(two_nodes.publish_url(node_id, stream))
    wait_until(
        lambda: studio.stream_row(stream.public_id)["status"] == "live", WAIT, f"live on {node_id}"
    )
    return stream


def _segments_grow(two_nodes, public_id: str, beyond: int) -> bool:
    return len(two_nodes.segments(public_id)) > beyond


def test_streams_land_on_both_nodes_and_upload_through_their_own_workers(two_nodes, publishers):
    """A stream published to each node is held by that node; its files are
    written only on that node and reach the bucket through that node's
    workers: with node-2's workers stopped, node-2's stream waits on its
    disk while node-1's keeps arriving, and it catches up when they return."""
    one = _go_live(two_nodes, publishers, "node-1")
    two = _go_live(two_nodes, publishers, "node-2")
    assert two_nodes.stream_node(one.public_id) == "node-1"
    assert two_nodes.stream_node(two.public_id) == "node-2"
    for stream in (one, two):
        wait_until(lambda s=stream: _segments_grow(two_nodes, s.public_id, 1), WAIT, "segments")
        for name in two_nodes.segments(stream.public_id)[:2]:
            assert two_nodes.studio.bucket_get(name)[0] == 200
    assert two_nodes.local_files("node-2", one.public_id) == []
    assert two_nodes.local_files("node-1", two.public_id) == []

    workers = two_nodes.nodes["node-2"].workers
    workers.stop()
    try:
        uploaded_two = len(two_nodes.segments(two.public_id))
        uploaded_one = len(two_nodes.segments(one.public_id))
        wait_until(
            lambda: len(two_nodes.local_files("node-2", two.public_id)) >= 3,
            WAIT,
            "node-2's segments waiting on its disk",
        )
        wait_until(
            lambda: _segments_grow(two_nodes, one.public_id, uploaded_one + 2),
            WAIT,
            "node-1's segments still uploaded",
        )
        # Nobody else took node-2's work: nothing of its stream was recorded
        # (one pass may have been under way when the workers stopped).
        assert len(two_nodes.segments(two.public_id)) <= uploaded_two + 1
    finally:
        workers.start()
    waiting = len(two_nodes.local_files("node-2", two.public_id))
    wait_until(
        lambda: _segments_grow(two_nodes, two.public_id, uploaded_two + waiting - 1),
        WAIT,
        "node-2's backlog uploaded by its workers",
    )


def test_drops_and_stats_reach_the_stream_node(two_nodes, publishers):
    """The reconciler samples each live stream's ingest from its own node;
    rotating a key drops the publisher at the node holding it and no other."""
    one = _go_live(two_nodes, publishers, "node-1")
    two = _go_live(two_nodes, publishers, "node-2")
    studio = two_nodes.studio

    def sampled(public_id: str) -> bool:
        two_nodes.reconcile(time.time())
        with studio.app.app_context():
            from studio.redis_client import get_redis

            return bool(ingest_history.samples(get_redis(), public_id, time.time()))

    wait_until(lambda: sampled(one.public_id), WAIT, "node-1's stream sampled")
    wait_until(lambda: sampled(two.public_id), WAIT, "node-2's stream sampled")

    with studio.app.app_context():
        on = {n: {p.stream_name for p in engines.for_node(n).publishers()} for n in NODES}
        stream = db.session.scalar(select(Stream).where(Stream.public_id == two.public_id))
        streams.rotate_key(db.session, stream)
        db.session.commit()
        db.session.remove()
    assert one.public_id in on["node-1"] and one.public_id not in on["node-2"]
    assert two.public_id in on["node-2"] and two.public_id not in on["node-1"]
    dropped = publishers.processes[-1]
    assert poll(lambda: dropped.poll() is not None, WAIT), "node-2's publisher not dropped"
    assert publishers.processes[-2].poll() is None
    assert studio.stream_row(one.public_id)["status"] == "live"


def test_a_draining_node_takes_no_new_publisher(two_nodes, publishers):
    """node-2 drains: the load balancer's health check answers 503, a new
    publisher on node-2 is refused, the stream it already holds stays live,
    and the refused stream goes live on node-1."""
    studio = two_nodes.studio
    held = _go_live(two_nodes, publishers, "node-2")
    with studio.app.app_context():
        media_nodes.set_draining(db.session, "node-2", True)
        db.session.commit()
    try:
        health = requests.get(f"{studio.base_url}/hooks/nodes/node-2/health", timeout=10)
        assert health.status_code == 503 and health.json()["draining"] is True
        fresh = studio.create_stream(studio.create_user())
        refused = publishers.start(two_nodes.publish_url("node-2", fresh))
        assert poll(lambda: refused.poll() is not None, WAIT), "refused publisher still running"
        assert studio.stream_row(fresh.public_id)["status"] != "live"
        assert two_nodes.local_files("node-2", fresh.public_id) == []

        publishers.start(two_nodes.publish_url("node-1", fresh))
        wait_until(lambda: studio.stream_row(fresh.public_id)["status"] == "live", WAIT, "live")
        assert two_nodes.stream_node(fresh.public_id) == "node-1"
        assert studio.stream_row(held.public_id)["status"] == "live"
        assert two_nodes.stream_node(held.public_id) == "node-2"
    finally:
        with studio.app.app_context():
            media_nodes.set_draining(db.session, "node-2", False)
            db.session.commit()


def test_a_dead_node_ends_only_its_streams(two_nodes, publishers):
    """node-2's nginx dies (killed, no callbacks): once it has not answered
    for the grace period the reconciler ends its streams; node-1's stream
    stays live and its viewers keep getting new segments."""
    one = _go_live(two_nodes, publishers, "node-1")
    two = _go_live(two_nodes, publishers, "node-2")
    wait_until(lambda: two_nodes.live_segment_names(one.public_id), WAIT, "node-1's playlist")
    grace = float(two_nodes.studio.app.config["RECONCILE_GRACE_SECONDS"])
    nginx = two_nodes.nodes["node-2"].nginx.executor
    nginx.kill()
    try:
        now = time.time()
        two_nodes.reconcile(now)
        assert two_nodes.studio.stream_row(two.public_id)["status"] == "live"
        two_nodes.reconcile(now + grace + 1)
        assert two_nodes.studio.stream_row(two.public_id)["status"] == "ended"
        assert two_nodes.stream_node(two.public_id) is None
        assert two_nodes.studio.stream_row(one.public_id)["status"] == "live"
        assert two_nodes.stream_node(one.public_id) == "node-1"

        seen = set(two_nodes.live_segment_names(one.public_id))
        fresh = wait_until(
            lambda: set(two_nodes.live_segment_names(one.public_id)) - seen,
            WAIT,
            "a new segment in node-1's live playlist",
        )
        base = layout.live_playlist(one.public_id).rsplit("/", 1)[0]
        for name in fresh:
            assert two_nodes.studio.bucket_get(f"{base}/{name}")[0] == 200
    finally:
        nginx.start()
