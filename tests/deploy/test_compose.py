"""docker-compose.yml and .env.example: valid against the Compose
specification, and every variable documented."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.envfiles import (
    ROOT,
    compose_variables,
    documented_variables,
    python_env_reads,
)

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_spec_schema():
    """check-jsonschema's vendored compose-spec schema accepts docker-compose.yml."""
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_compose_file(tmp_path):
    """The schema check is not a rubber stamp: an unknown service key fails it."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    restart_policy: always\n")
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0


def test_every_compose_variable_is_documented():
    """Each ${VAR} docker-compose.yml uses has a line in .env.example."""
    missing = compose_variables() - documented_variables()
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_every_setting_the_app_reads_is_documented():
    """Each environment variable of the settings object, every gunicorn config
    and the workers has a line in .env.example and a row in the README's table."""
    from studio.config import environment_variables

    sources = [ROOT / f"gunicorn{tier}.conf.py" for tier in ("", "_sockets", "_hooks")]
    sources += sorted((ROOT / "workers").glob("*.py"))
    read = environment_variables().union(*(python_env_reads(path) for path in sources))
    assert {"STUDIO_SECRET_KEY", "DATABASE_URL", "STUDIO_WEB_WORKERS"} <= read  # the scan works
    missing = read - documented_variables()
    assert not missing, f"not in .env.example: {sorted(missing)}"
    readme = (ROOT / "README.md").read_text()
    unlisted = {name for name in read if f"| `{name}` |" not in readme}
    assert not unlisted, f"not in the README's settings table: {sorted(unlisted)}"


def test_services_the_issue_asks_for():
    """srs (SRS 5 with srs/srs.conf), postgres, redis, web, worker, nginx, coturn,
    and prometheus + grafana only in the monitoring profile."""
    services = compose()["services"]
    for name in ("srs", "postgres", "redis", "web", "worker", "nginx", "coturn"):
        assert name in services, name
        assert "profiles" not in services[name]
    assert services["srs"]["image"] == "ossrs/srs:5"
    assert any("srs/srs.conf" in volume for volume in services["srs"]["volumes"])
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]


def test_hls_volume_shared_by_srs_and_the_uploaders():
    """SRS writes HLS into the `hls` volume the worker and watcher read and delete from."""
    services = compose()["services"]
    for name in ("srs", "worker", "watcher"):
        assert "hls:/data/hls" in services[name]["volumes"], name
    assert {"hls", "pgdata", "certs"} <= set(compose()["volumes"])


def test_srs_hooks_point_at_the_web_service_with_the_token():
    """Every hook srs/srs.conf configures is overridden to call the studio (through
    nginx's private port, which sends it to the callback tier, retrying across
    replicas, web as the fallback) with the hook token
    (the file's placeholder token would refuse them all)."""
    env = compose()["services"]["srs"]["environment"]
    conf = (ROOT / "srs" / "srs.conf").read_text()
    hooks_block = conf.split("http_hooks", 1)[1].split("}", 1)[0]
    events = re.findall(r"^\s*(on_[a-z_]+)\s", hooks_block, flags=re.MULTILINE)
    assert "on_publish" in events and "on_unpublish" in events
    expected = "http://nginx:8088/hooks/srs?token=${STUDIO_HOOK_TOKEN}"
    for event in events:
        assert env.get(f"SRS_VHOST_HTTP_HOOKS_{event.upper()}") == expected, event
    assert "CANDIDATE" in env


def test_every_long_running_service_has_a_healthcheck():
    """Compose can tell a broken container from a working one."""
    services = compose()["services"]
    for name in (
        "srs",
        "postgres",
        "redis",
        "web",
        "sockets",
        "worker",
        "watcher",
        "reconciler",
        "multistream",
        "nginx",
    ):
        assert "healthcheck" in services[name], name


def test_multistream_relays_and_srt_ingest():
    """The multistream role runs the relay process and reads streams back from
    SRS over RTMP; SRS publishes its SRT port (UDP 10080) next to RTMP."""
    services = compose()["services"]
    assert services["multistream"]["command"] == ["multistream"]
    env = services["multistream"]["environment"]
    assert env["STUDIO_RTMP_PLAYBACK_URL"] == "rtmp://srs:1935/live"
    assert env["STUDIO_TARGET_KEYS"].startswith("${STUDIO_TARGET_KEYS:?")
    assert "10080:10080/udp" in services["srs"]["ports"]
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    assert "workers.multistream" in entrypoint.split("multistream)", 1)[1].split(";;", 1)[0]


def test_compose_references_files_that_exist():
    """Every file the compose file mounts from the repository is in it (srs.conf
    and the coturn config come from the media and browser-ingest work)."""
    text = (ROOT / "docker-compose.yml").read_text()
    for path in (
        "deploy/nginx/studio.conf",
        "deploy/nginx/nginx.conf",
        "deploy/nginx/media-nodes",
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/alerts.yml",
        "deploy/entrypoint.sh",
    ):
        assert (ROOT / path).exists(), path
        assert path in text or path == "deploy/entrypoint.sh"


def test_shell_entrypoint_parses():
    """deploy/entrypoint.sh is valid POSIX sh."""
    sh = shutil.which("sh")
    assert sh
    result = subprocess.run([sh, "-n", str(ROOT / "deploy" / "entrypoint.sh")], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_worker_consumes_the_pipeline_queue():
    """The worker role listens on the queues the upload pipeline enqueues to,
    live segments before replays."""
    from studio.media import pipeline

    queues = compose()["services"]["worker"]["environment"]["STUDIO_RQ_QUEUES"].split()
    assert [q for q in queues if q in pipeline.QUEUES] == list(pipeline.QUEUES)


def test_coturn_serves_tls_with_the_certificate_nginx_uses():
    """coturn's --cert/--pkey name the files nginx's ssl_certificate and
    ssl_certificate_key name, in the same certs volume (read only), so
    turns: on 5349 presents the studio's certificate."""
    services = compose()["services"]
    conf = (ROOT / "deploy" / "nginx" / "studio.conf").read_text()

    def mounted(service: str, path: str) -> str:
        """`path` inside `service` as a path inside the volume it is on."""
        for volume in services[service]["volumes"]:
            name, target, *options = volume.split(":")
            if path.startswith(target.rstrip("/") + "/"):
                assert options == ["ro"], volume
                return f"{name}:{path[len(target.rstrip('/')) :]}"
        raise AssertionError(f"{path} is on no volume of {service}")

    nginx = {
        key: mounted("nginx", re.search(rf"^\s*{key}\s+(\S+);", conf, re.M)[1])
        for key in ("ssl_certificate", "ssl_certificate_key")
    }
    options = dict(arg.split("=", 1) for arg in services["coturn"]["command"] if "=" in arg)
    assert mounted("coturn", options["--cert"]) == nginx["ssl_certificate"]
    assert mounted("coturn", options["--pkey"]) == nginx["ssl_certificate_key"]
    assert nginx["ssl_certificate"].startswith("certs:/")
