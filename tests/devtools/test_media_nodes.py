"""`MEDIA_NODES=N make dev`: N local media nodes, each an nginx-rtmp with its
own HLS directory, watcher and upload workers, behind one RTMP address (an
nginx stream proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import dev, runner
from devtools.gcs import GcsService
from devtools.nginx import NginxService, start_rtmp_proxy
from devtools.process import StackError
from tests.devtools.test_services import unique
from tests.polling import wait_until


def node(node_id: str, port: int) -> NginxService:
    """A node's nginx as make dev sees it (not started)."""
    return NginxService(
        name=f"nginx-{node_id}",
        url=f"http://127.0.0.1:{port}",
        rtmp_url=f"rtmp://127.0.0.1:{port + 1}/live",
        control_url=f"http://127.0.0.1:{port}",
        edge_url=f"http://127.0.0.1:{port + 2}",
        hls_dir=Path(f"/srv/var/nodes/{node_id}/hls"),
    )


def test_two_media_nodes_each_get_their_own_watcher_and_workers() -> None:
    """make dev's plan for two nodes: a watcher and upload workers per node,
    named after it; the workers' command line names the node's own queues
    (and no shared one); each process's environment names its node, its
    HLS directory and its nginx's control API."""
    env = {"REDIS_URL": "redis://127.0.0.1:7/0", "STUDIO_HLS_DIR": "/srv/var/hls"}
    plan = dev.node_plan(env, {"node-1": node("node-1", 9100), "node-2": node("node-2", 9200)})
    names = {f"{kind}-{n}" for kind in ("watcher", "rq-workers") for n in ("node-1", "node-2")}
    assert set(plan) == names
    for node_id, port in (("node-1", 9100), ("node-2", 9200)):
        workers, workers_env = plan[f"rq-workers-{node_id}"]
        assert workers[-2:] == [f"segments.{node_id}", f"replays.{node_id}"], workers
        assert "uploads" not in workers and "webhooks" not in workers
        watcher, watcher_env = plan[f"watcher-{node_id}"]
        assert watcher[-2:] == ["-m", "workers.watcher"]
        for own in (workers_env, watcher_env):
            assert own["STUDIO_NODE_ID"] == node_id
            assert own["STUDIO_HLS_DIR"] == f"/srv/var/nodes/{node_id}/hls"
            assert own["STUDIO_NGINX_CONTROL_URL"] == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("value", "srs_bin", "message"),
    [("two", None, "from 0 to 8"), ("9", None, "from 0 to 8"), ("2", "/opt/srs", "SRS_BIN")],
)
def test_a_bad_media_nodes_value_is_refused(monkeypatch, value, srs_bin, message) -> None:
    """MEDIA_NODES is a small number of nginx-rtmp nodes; anything else is
    refused before anything starts."""
    monkeypatch.setenv("MEDIA_NODES", value)
    with pytest.raises(StackError, match=message):
        dev.media_node_count(srs_bin)


def test_without_media_nodes_make_dev_runs_no_node(monkeypatch) -> None:
    monkeypatch.delenv("MEDIA_NODES", raising=False)
    assert dev.media_node_count(None) == 0


def test_a_publish_through_the_proxy_reaches_one_node(
    tmp_path: Path, gcs: GcsService, hook, publish
) -> None:
    """Two nodes' nginx-rtmp behind the proxy: an ffmpeg publish to the
    proxy's address is announced by one node (its id in the callback URL)
    and that node, and only that one, writes the stream's HLS segments."""
    env = {"STORAGE_EMULATOR_HOST": gcs.url, "STUDIO_GCS_BUCKET": gcs.bucket}
    hook_url = hook.url + hook.path
    nodes, started = {}, []
    try:
        for node_id in ("node-1", "node-2"):
            nodes[node_id] = runner.start_node_nginx(env, tmp_path, node_id, hook_url=hook_url)
            started.append(nodes[node_id])
        assert nodes["node-1"].hls_dir == (tmp_path / "nodes" / "node-1" / "hls").resolve()
        proxy = start_rtmp_proxy(tmp_path, [n.rtmp_url for n in nodes.values()])
        started.append(proxy)
        name = unique("cam")
        ffmpeg = publish(f"{proxy.url}/{name}?secret=s3cret", seconds=5)
        _, errors = ffmpeg.communicate(timeout=60)
        assert ffmpeg.returncode == 0, errors

        announced = hook.wait_for(name, "publish")
        [holder] = [n for n in nodes if announced["path"].endswith(f"&node={n}")]

        def segments(node_id: str) -> list[Path]:
            return list((nodes[node_id].hls_dir / "live").glob(f"{name}-*.ts"))

        wait_until(lambda: segments(holder), timeout=10, what=f"segments on {holder}")
        assert all(path.stat().st_size > 0 for path in segments(holder))
        assert not [path for n in nodes if n != holder for path in segments(n)]
    finally:
        for service in reversed(started):
            service.stop()
