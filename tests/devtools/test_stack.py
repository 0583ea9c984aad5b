"""devtools/stack.py against the real services it starts."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from devtools import stack
from devtools.nginx import hls_values

SEGMENT_CACHE = "public, max-age=31536000, immutable"


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# Ports, templates, PostgreSQL, Redis


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {stack.free_port() for _ in range(20)}
    assert len(ports) == 20
    assert not any(stack.port_open("127.0.0.1", port) for port in ports)


def test_rendered_nginx_conf_fills_placeholders_and_keeps_nginx_variables(
    tmp_path: Path,
) -> None:
    (tmp_path / "conf").mkdir()
    values = {
        "RTMP_PORT": 1,
        "HTTP_PORT": 2,
        "EDGE_PORT": 3,
        "HLS_DIR": "/h",
        "HOOK_URL": "http://127.0.0.1:9/hook?token=x",
        "GCS_URL": "http://g",
        "BUCKET": "b",
    }
    stack.render_nginx_conf(tmp_path, values)
    text = "".join(p.read_text() for p in (tmp_path / "conf").glob("*.conf"))
    assert "${" not in text
    assert "$upstream_cache_status" in text
    assert 'on_publish "http://127.0.0.1:9/hook?token=x";' in text
    assert "proxy_pass http://g/b/;" in text
    assert "hls_fragment 2000ms;" in text  # STUDIO_HLS_FRAGMENT's default


def test_nginx_rtmp_fragments_follow_the_studio_setting(tmp_path: Path) -> None:
    """A 1 s STUDIO_HLS_FRAGMENT gives nginx-rtmp 1 s fragments and a window
    of six; a length that is not positive is refused."""
    (tmp_path / "conf").mkdir()
    values = {
        "RTMP_PORT": 1,
        "HTTP_PORT": 2,
        "EDGE_PORT": 3,
        "HLS_DIR": "/h",
        "HOOK_URL": "http://127.0.0.1:9/hook?token=x",
        "GCS_URL": "http://g",
        "BUCKET": "b",
        **hls_values(1.0),
    }
    stack.render_nginx_conf(tmp_path, values)
    text = (tmp_path / "conf" / "rtmp.conf").read_text()
    assert "hls_fragment 1000ms;" in text
    assert "hls_playlist_length 6000ms;" in text
    with pytest.raises(stack.StackError):
        hls_values(0)


def test_private_redis_answers_and_stops(tmp_path: Path) -> None:
    redis = stack.start_redis(tmp_path)
    port = int(redis.url.rsplit(":", 1)[1].split("/")[0])
    assert stack.redis_ping("127.0.0.1", port)
    redis.stop()
    assert not stack.port_open("127.0.0.1", port)


def test_throwaway_database_is_created_and_dropped(tmp_path: Path) -> None:
    postgres = stack.ensure_postgres(tmp_path)
    name = unique("studio_test_")
    try:
        stack.create_database(postgres.server_url, name)
        stack.create_database(postgres.server_url, name)  # already there: fine
        listed = stack._psql(postgres.server_url, "SELECT datname FROM pg_database")
        assert name in listed.split()
        stack.drop_database(postgres.server_url, name)
        listed = stack._psql(postgres.server_url, "SELECT datname FROM pg_database")
        assert name not in listed.split()
    finally:
        postgres.stop()


def test_private_postgres_cluster_starts_and_stops(tmp_path: Path) -> None:
    postgres = stack.start_postgres(tmp_path, database="studio", ephemeral=True)
    port = int(postgres.url.rsplit(":", 1)[1].split("/")[0])
    assert port != 5432
    assert stack._psql(postgres.url, "SELECT current_database()").strip() == "studio"
    home = postgres.remove_on_stop
    postgres.stop()
    assert not stack.port_open("127.0.0.1", port)
    assert home is not None and not home.exists()


def test_database_names_must_be_plain_identifiers() -> None:
    with pytest.raises(ValueError):
        stack.create_database("postgresql://unused/postgres", 'x"; DROP DATABASE studio; --')


# --------------------------------------------------------------------------
# fake-gcs-server and the CDN edge


def test_fake_gcs_has_the_bucket_and_serves_objects_publicly(gcs: stack.GcsService) -> None:
    status, _, body = stack.http_request("GET", f"{gcs.url}/storage/v1/b/{gcs.bucket}")
    assert status == 200
    assert json.loads(body)["name"] == gcs.bucket

    name = unique("probe/") + ".txt"
    stack.upload_object(gcs.url, gcs.bucket, name, b"hello", "text/plain", "max-age=60")
    status, headers, body = stack.http_request("GET", f"{gcs.url}/{gcs.bucket}/{name}")
    assert (status, body) == (200, b"hello")
    assert headers["Content-Type"] == "text/plain"
    assert headers["Cache-Control"] == "max-age=60"


def test_edge_caches_as_long_as_the_origin_says(
    gcs: stack.GcsService, nginx: stack.NginxService
) -> None:
    stream = unique("live/")
    stack.upload_object(
        gcs.url, gcs.bucket, f"{stream}/1/0.ts", b"T" * 1000, "video/mp2t", SEGMENT_CACHE
    )
    playlist = f"{stream}/index.m3u8"
    stack.upload_object(
        gcs.url,
        gcs.bucket,
        playlist,
        b"#EXTM3U\n",
        "application/vnd.apple.mpegurl",
        "public, max-age=1",
    )

    def get(name: str) -> tuple[int, dict[str, str]]:
        status, headers, _ = stack.http_request("GET", f"{nginx.edge_url}/{name}")
        return status, headers

    status, first = get(f"{stream}/1/0.ts")
    assert status == 200
    assert first["X-Cache-Status"] == "MISS"
    assert first["Content-Type"] == "video/mp2t"
    assert first["Cache-Control"] == SEGMENT_CACHE
    assert first["Access-Control-Allow-Origin"] == "*"
    assert not [h for h in first if h.lower().startswith("x-goog-")]
    assert get(f"{stream}/1/0.ts")[1]["X-Cache-Status"] == "HIT"

    assert get(playlist)[1]["X-Cache-Status"] == "MISS"
    assert get(playlist)[1]["X-Cache-Status"] == "HIT"
    time.sleep(2.1)  # max-age=1, and nginx counts whole seconds
    refreshed = get(playlist)[1]
    assert refreshed["X-Cache-Status"] == "EXPIRED"
    assert refreshed["Content-Type"] == "application/vnd.apple.mpegurl"


def test_edge_does_not_cache_missing_objects(
    gcs: stack.GcsService, nginx: stack.NginxService
) -> None:
    name = unique("live/") + "/index.m3u8"
    status, _, _ = stack.http_request("GET", f"{nginx.edge_url}/{name}")
    assert status == 404
    stack.upload_object(gcs.url, gcs.bucket, name, b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    status, _, body = stack.http_request("GET", f"{nginx.edge_url}/{name}")
    assert (status, body) == (200, b"#EXTM3U\n")


def test_edge_answers_cors_preflight_and_refuses_writes(nginx: stack.NginxService) -> None:
    preflight = {"Origin": "http://127.0.0.1:5000", "Access-Control-Request-Method": "GET"}
    status, headers, _ = stack.http_request("OPTIONS", f"{nginx.edge_url}/x.ts", None, preflight)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Range" in headers["Access-Control-Allow-Headers"]
    status, _, _ = stack.http_request("POST", f"{nginx.edge_url}/x.ts", b"data")
    assert status == 403


# --------------------------------------------------------------------------
# nginx-rtmp: hooks, HLS, control


def test_publish_accepted_on_2xx_sends_hooks_and_writes_hls(
    nginx: stack.NginxService, hook, publish
) -> None:
    name = unique("cam")
    ffmpeg = publish(f"{nginx.rtmp_url}/{name}?secret=s3cret", seconds=3)
    _, errors = ffmpeg.communicate(timeout=30)
    assert ffmpeg.returncode == 0, errors

    started = hook.wait_for(name, "publish")
    assert started["path"] == hook.path
    assert started["form"]["app"] == "live"
    assert started["form"]["secret"] == "s3cret"
    assert started["form"]["type"] == "live"
    done = hook.wait_for(name, "publish_done")
    assert done["form"]["clientid"] == started["form"]["clientid"]

    live = nginx.hls_dir / "live"
    assert (live / f"{name}.m3u8").read_text().startswith("#EXTM3U")
    assert (live / f"{name}-0.ts").stat().st_size > 0


def test_publish_refused_on_403(nginx: stack.NginxService, hook, publish) -> None:
    hook.status = 403
    name = unique("cam")
    ffmpeg = publish(f"{nginx.rtmp_url}/{name}?secret=wrong", seconds=5)
    ffmpeg.communicate(timeout=30)
    assert ffmpeg.returncode != 0
    time.sleep(0.3)
    assert [r["form"]["call"] for r in hook.calls(name)] == ["publish"]
    assert not (nginx.hls_dir / "live" / f"{name}.m3u8").exists()


def test_control_drops_a_publisher(nginx: stack.NginxService, hook, publish) -> None:
    name = unique("cam")
    ffmpeg = publish(f"{nginx.rtmp_url}/{name}", seconds=60)
    try:
        hook.wait_for(name, "publish")
        url = f"{nginx.control_url}/control/drop/publisher?app=live&name={name}"
        assert stack.http_request("GET", url)[2] == b"1"
        ffmpeg.communicate(timeout=10)
        assert ffmpeg.returncode != 0
        hook.wait_for(name, "publish_done")
    finally:
        ffmpeg.kill()
        ffmpeg.communicate()
