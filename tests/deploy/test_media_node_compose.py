"""A pool of media nodes in production: the control plane
(docker-compose.yml with deploy/control-plane.yml) and a media node
(deploy/media-node/docker-compose.yml), deployable separately."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from studio.media import jobs
from tests.deploy.envfiles import COMPOSE_VARIABLE, ROOT, documented_variables

NODE_DIR = ROOT / "deploy" / "media-node"
NODE_COMPOSE = NODE_DIR / "docker-compose.yml"
CONTROL_PLANE = ROOT / "deploy" / "control-plane.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def services(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["services"]


def plain(value: str) -> str:
    """A compose value with its `${NAME:?message}` checks as `${NAME}`."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", r"${\1}", value)


@pytest.mark.parametrize("path", [NODE_COMPOSE, CONTROL_PLANE], ids=lambda p: p.name)
def test_the_files_match_the_compose_spec_schema(path: Path) -> None:
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_variable_is_documented() -> None:
    """The node's variables are in its env.example, the control plane's in
    .env.example."""
    node_documented = set(
        re.findall(r"^([A-Z][A-Z0-9_]*)=", (NODE_DIR / "env.example").read_text(), re.M)
    )
    missing = set(COMPOSE_VARIABLE.findall(NODE_COMPOSE.read_text())) - node_documented
    assert not missing, f"not in deploy/media-node/env.example: {sorted(missing)}"
    missing = set(COMPOSE_VARIABLE.findall(CONTROL_PLANE.read_text())) - documented_variables()
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_a_node_calls_back_naming_itself() -> None:
    """Every hook srs/srs.conf configures goes to the control plane's
    callback port with the token and `node=<this node's id>`; SRS's server id
    is the node's."""
    env = services(NODE_COMPOSE)["srs"]["environment"]
    conf = (ROOT / "srs" / "srs.conf").read_text()
    events = re.findall(r"^\s*(on_[a-z_]+)\s", conf.split("http_hooks", 1)[1].split("}")[0], re.M)
    assert "on_publish" in events
    expected = "${STUDIO_HOOKS_ORIGIN}/hooks/srs?token=${STUDIO_HOOK_TOKEN}&node=${STUDIO_NODE_ID}"
    for event in events:
        assert plain(env[f"SRS_VHOST_HTTP_HOOKS_{event.upper()}"]) == expected, event
    assert plain(env["SRS_SERVER_ID"]) == "${STUDIO_NODE_ID}"


def test_a_node_s_workers_take_its_own_queues_and_share_its_hls_directory() -> None:
    """The worker role listens on exactly the queues the studio sends this
    node's segment work to; SRS, worker and watcher share one HLS volume."""
    node = services(NODE_COMPOSE)
    queues = node["worker"]["environment"]["STUDIO_RQ_QUEUES"]
    assert queues.replace("${STUDIO_NODE_ID}", "node-7").split() == list(jobs.node_queues("node-7"))
    for name in ("srs", "worker", "watcher"):
        assert "hls:/data/hls" in node[name]["volumes"], name
    for name in ("worker", "watcher"):
        assert plain(node[name]["environment"]["STUDIO_NODE_ID"]) == "${STUDIO_NODE_ID}"
    for name in ("srs", "worker", "watcher", "health"):
        assert "healthcheck" in node[name], name


def test_a_node_s_health_is_the_control_plane_s_answer_for_it() -> None:
    """The balancer's health check on :8080/health is the control plane's
    /hooks/nodes/<id>/health (503 while the node drains), a route the studio has."""
    from studio import create_app
    from studio.config import testing

    health = services(NODE_COMPOSE)["health"]
    [mount] = [v for v in health["volumes"] if "templates" in v]
    template = (NODE_DIR / mount.split(":")[0]).read_text()
    assert "proxy_pass ${STUDIO_HOOKS_ORIGIN}/hooks/nodes/${STUDIO_NODE_ID}/health;" in template
    rules = {rule.rule for rule in create_app(testing()).url_map.iter_rules()}
    assert any(re.fullmatch(r"/hooks/nodes/<[\w:]*node_id>/health", rule) for rule in rules), rules


def test_the_control_plane_runs_no_media_of_its_own() -> None:
    """With deploy/control-plane.yml, SRS, the watcher and hls-init start only
    with the single-vm profile; nginx's callback port, PostgreSQL and Redis are
    published on the private address for the nodes."""
    base, override = services(ROOT / "docker-compose.yml"), services(CONTROL_PLANE)
    profiled = {name for name, service in override.items() if "profiles" in service}
    assert profiled == {"srs", "watcher", "hls-init"}
    assert {"web", "hooks", "worker", "reconciler", "nginx"} <= set(base) - profiled
    for name, port in (("nginx", 8088), ("postgres", 5432), ("redis", 6379)):
        assert override[name]["ports"] == [
            f"${{STUDIO_PRIVATE_ADDRESS:?set STUDIO_PRIVATE_ADDRESS}}:{port}:{port}"
        ]
    assert base["web"]["environment"]["STUDIO_MEDIA_NODES"] == "${STUDIO_MEDIA_NODES:-}"


def test_a_node_mounts_files_that_exist() -> None:
    for service in services(NODE_COMPOSE).values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (NODE_DIR / source).resolve().is_file(), volume
