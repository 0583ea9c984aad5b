"""`MEDIA_NODES=N make dev`: N local media nodes, each an nginx-rtmp with its
own HLS directory, watcher and upload workers, behind one RTMP address (an
nginx stream proxy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools import dev
from devtools.process import StackError
from devtools.services import GcsService
from tests.devtools.test_services import unique
from tests.polling import wait_until


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


def test_make_dev_runs_each_node_under_its_name_behind_one_rtmp_address(
    tmp_path: Path, gcs: GcsService, hook, publish, monkeypatch
) -> None:
    """make dev's two nodes: each node's watcher and two upload workers are
    named after it and get an environment naming the
    node, its HLS directory, its nginx's control API and the pool; the
    studio learns the pool and the proxy's address. An ffmpeg publish to that address is
    announced by one node (its id in the callback URL) and that node, and
    only that one, writes the stream's HLS segments."""
    monkeypatch.setattr(dev, "VAR", tmp_path)
    env = {"STORAGE_EMULATOR_HOST": gcs.url, "STUDIO_GCS_BUCKET": gcs.bucket}
    env["REDIS_URL"] = "redis://127.0.0.1:7/0"
    supervisor, services = dev.Supervisor(tmp_path / "logs"), []
    try:
        dev.start_media_nodes(2, services, supervisor, env, hook.url + hook.path)
        nodes = {node_id: services[n] for n, node_id in enumerate(("node-1", "node-2"))}
        assert [s.name for s in services] == ["nginx-node-1", "nginx-node-2", "rtmp-proxy"]
        assert env["STUDIO_RTMP_URL"] == services[2].url
        pool = [{"id": n, "api_url": nginx.control_url} for n, nginx in nodes.items()]
        assert json.loads(env["STUDIO_MEDIA_NODES"]) == pool
        for node_id, nginx in nodes.items():
            assert nginx.hls_dir == (tmp_path / "nodes" / node_id / "hls").resolve()
            workers = [supervisor._processes[f"rq-worker-{node_id}-{n}"]["obj"] for n in (1, 2)]
            watcher = supervisor._processes[f"watcher-{node_id}"]["obj"]
            # The worker role takes the node's queues from STUDIO_NODE_ID.
            assert all(w.cmd.endswith("/deploy/entrypoint.sh worker") for w in workers)
            assert watcher.cmd.endswith(f"/deploy/entrypoint.sh watcher --node {node_id}")
            for own in (*(w.env for w in workers), watcher.env):
                assert own["STUDIO_NODE_ID"] == node_id
                assert own["STUDIO_HLS_DIR"] == str(nginx.hls_dir)
                assert own["STUDIO_NGINX_CONTROL_URL"] == nginx.control_url
                assert own["STUDIO_MEDIA_NODES"] == env["STUDIO_MEDIA_NODES"]

        name = unique("cam")
        ffmpeg = publish(f"{env['STUDIO_RTMP_URL']}/{name}?secret=s3cret", seconds=5)
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
        for service in reversed(services):
            service.stop()
