"""The services devtools starts (devtools/services.py, nginx.py), against
the real servers."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from devtools.nginx import NginxService, hls_values, render_nginx_conf
from devtools.process import StackError, free_port
from devtools.services import (
    GcsService,
    create_database,
    ensure_postgres,
    start_postgres,
    start_redis,
)
from tests.devtools.conftest import upload
from tests.stack import drop_database

SEGMENT_CACHE = "public, max-age=31536000, immutable"


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def query(url: str, sql: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(sql)
        return [row[0] for row in cursor] if cursor.description else []


# --------------------------------------------------------------------------
# Ports, templates, PostgreSQL, Redis


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_preferred_port_in_use_is_not_handed_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert free_port(taken) != taken


def test_rendered_nginx_conf_fills_placeholders_and_follows_the_fragment_setting(
    tmp_path: Path,
) -> None:
    """Every placeholder is filled and nginx's own `$variables` stay; a 1 s
    STUDIO_HLS_FRAGMENT gives nginx-rtmp 1 s fragments and a window of six;
    a length that is not positive is refused."""
    values = {
        "RTMP_PORT": 1,
        "HTTP_PORT": 2,
        "EDGE_PORT": 3,
        "HLS_DIR": "/h",
        "HOOK_URL": "http://127.0.0.1:9/hook?token=x",
        "EDGE_AUTH_URL": "http://127.0.0.1:9/hooks/cdn-auth?token=x",
        "STUDIO_ORIGIN": "-",
        "GCS_URL": "http://g",
        "BUCKET": "b",
        **hls_values(1.0),
    }
    render_nginx_conf(tmp_path, values)
    text = "".join(p.read_text() for p in (tmp_path / "conf").glob("*.conf"))
    assert "${" not in text
    assert "$upstream_cache_status" in text
    assert 'on_publish "http://127.0.0.1:9/hook?token=x";' in text
    assert "proxy_pass http://g/b/;" in text
    assert "hls_fragment 1000ms;" in text
    assert "hls_playlist_length 6000ms;" in text
    with pytest.raises(StackError):
        hls_values(0)


def test_private_redis_answers_and_stops(tmp_path: Path) -> None:
    service = start_redis(tmp_path)
    port = int(service.url.rsplit(":", 1)[1].split("/")[0])
    assert redis.Redis.from_url(service.url).ping()
    service.stop()
    assert not listening(port)


def test_throwaway_database_is_created_and_dropped(tmp_path: Path) -> None:
    postgres = ensure_postgres(tmp_path)
    name = unique("studio_test_")
    try:
        create_database(postgres.server_url, name)
        create_database(postgres.server_url, name)  # already there: fine
        assert name in query(postgres.server_url, "SELECT datname FROM pg_database")
        drop_database(postgres.server_url, name)
        assert name not in query(postgres.server_url, "SELECT datname FROM pg_database")
    finally:
        postgres.stop()


def test_private_cluster_is_reused_while_it_runs_and_keeps_its_data(tmp_path: Path) -> None:
    """make dev's cluster (var/pg) when no server listens on 5432: it starts
    on another port; a second start while it runs uses it; after a stop, a
    start finds the data of the run before."""
    first = start_postgres(tmp_path, database="studio")
    port = int(first.server_url.rsplit(":", 1)[1].split("/")[0])
    try:
        assert port != 5432
        assert query(first.url, "SELECT current_database()") == ["studio"]
        query(first.url, "CREATE TABLE kept AS SELECT 7 AS n")
        again = start_postgres(tmp_path, database="studio")
        assert (again.url, again.executor) == (first.url, None)
        first.stop()
        first = start_postgres(tmp_path, database="studio")
        assert first.executor is not None
        assert query(first.url, "SELECT n FROM kept") == [7]
    finally:
        first.stop()
        assert not listening(port)
        assert not (first.home / "data" / "postmaster.pid").exists()
        shutil.rmtree(first.home)


# --------------------------------------------------------------------------
# fake-gcs-server and the CDN edge


def test_fake_gcs_has_the_bucket_and_serves_objects_publicly(gcs: GcsService) -> None:
    reply = requests.get(f"{gcs.url}/storage/v1/b/{gcs.bucket}", timeout=10)
    assert reply.status_code == 200
    assert reply.json()["name"] == gcs.bucket

    name = unique("probe/") + ".txt"
    upload(gcs, name, b"hello", "text/plain", "max-age=60")
    reply = requests.get(f"{gcs.url}/{gcs.bucket}/{name}", timeout=10)
    assert (reply.status_code, reply.content) == (200, b"hello")
    assert reply.headers["Content-Type"] == "text/plain"
    assert reply.headers["Cache-Control"] == "max-age=60"


def test_edge_caches_as_long_as_the_origin_says(gcs: GcsService, nginx: NginxService) -> None:
    stream = unique("live/")
    upload(gcs, f"{stream}/1/0.ts", b"T" * 1000, "video/mp2t", SEGMENT_CACHE)
    playlist = f"{stream}/index.m3u8"
    upload(
        gcs,
        playlist,
        b"#EXTM3U\n",
        "application/vnd.apple.mpegurl",
        "public, max-age=1",
    )

    def get(name: str) -> tuple[int, dict[str, str]]:
        reply = requests.get(f"{nginx.edge_url}/{name}", timeout=10)
        return reply.status_code, reply.headers

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


def test_edge_does_not_cache_missing_objects(gcs: GcsService, nginx: NginxService) -> None:
    name = unique("live/") + "/index.m3u8"
    assert requests.get(f"{nginx.edge_url}/{name}", timeout=10).status_code == 404
    upload(gcs, name, b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    reply = requests.get(f"{nginx.edge_url}/{name}", timeout=10)
    assert (reply.status_code, reply.content) == (200, b"#EXTM3U\n")


def test_edge_answers_cors_preflight_and_refuses_writes(nginx: NginxService) -> None:
    preflight = {"Origin": "http://127.0.0.1:5000", "Access-Control-Request-Method": "GET"}
    reply = requests.options(f"{nginx.edge_url}/x.ts", headers=preflight, timeout=10)
    assert reply.status_code == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "Range" in reply.headers["Access-Control-Allow-Headers"]
    assert requests.post(f"{nginx.edge_url}/x.ts", b"data", timeout=10).status_code == 403


# --------------------------------------------------------------------------
# nginx-rtmp: hooks, HLS, control


def test_publish_accepted_on_2xx_sends_hooks_and_writes_hls(
    nginx: NginxService, hook, publish
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


def test_publish_refused_on_403(nginx: NginxService, hook, publish) -> None:
    hook.status = 403
    name = unique("cam")
    ffmpeg = publish(f"{nginx.rtmp_url}/{name}?secret=wrong", seconds=5)
    ffmpeg.communicate(timeout=30)
    assert ffmpeg.returncode != 0
    time.sleep(0.3)
    assert [r["form"]["call"] for r in hook.calls(name)] == ["publish"]
    assert not (nginx.hls_dir / "live" / f"{name}.m3u8").exists()


def test_control_drops_a_publisher(nginx: NginxService, hook, publish) -> None:
    name = unique("cam")
    ffmpeg = publish(f"{nginx.rtmp_url}/{name}", seconds=60)
    try:
        hook.wait_for(name, "publish")
        url = f"{nginx.control_url}/control/drop/publisher?app=live&name={name}"
        assert requests.get(url, timeout=10).content == b"1"
        ffmpeg.communicate(timeout=10)
        assert ffmpeg.returncode != 0
        hook.wait_for(name, "publish_done")
    finally:
        ffmpeg.kill()
        ffmpeg.communicate()
