"""`make dev` gives the studio its HTTPS site as the WebRTC origin: the WHIP and
webrtc:// URLs it hands out then go through the nginx site that passes
/rtc/v1/ to SRS (tests/deploy/test_tls_site.py posts to them), not to
gunicorn's plain port."""

from __future__ import annotations

from pathlib import Path

from devtools import runner
from devtools.nginx import NginxService
from devtools.services import GcsService
from studio import config as studio_config
from studio.media import engines
from studio.models import Stream
from studio.streams import urls


def studio_env_with(tls_url: str, monkeypatch, **environ: str) -> dict[str, str]:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    nginx = NginxService(
        name="nginx",
        url="http://127.0.0.1:8080",
        rtmp_url="rtmp://127.0.0.1:1935/live",
        control_url="http://127.0.0.1:8080",
        edge_url="http://127.0.0.1:8081",
        hls_dir=Path("var/hls"),
        tls_url=tls_url,
    )
    gcs = GcsService(name="gcs", url="http://127.0.0.1:4443", bucket="b")
    return runner.studio_env(
        database_url="postgresql://x/y",
        redis_url="redis://x",
        gcs=gcs,
        nginx=nginx,
        public_url="http://127.0.0.1:5000",
        secret_key="s",
        hook_token="t",
        engine="srs",
    )


def test_make_dev_hands_out_webrtc_urls_on_its_https_site(monkeypatch):
    monkeypatch.delenv("STUDIO_WEBRTC_ORIGIN", raising=False)
    monkeypatch.delenv("STUDIO_WEBRTC_HOST", raising=False)
    monkeypatch.delenv("STUDIO_WHIP_URL", raising=False)
    env = studio_env_with("https://vm:8443", monkeypatch)
    config = studio_config.from_environ(env)
    protocols = engines.build(config).ingest_protocols
    ingest = urls.ingest(Stream(public_id="abc", stream_key="k"), config, protocols)
    assert ingest["whip_url"] == "https://vm:8443/rtc/v1/whip/?app=live&stream=abc&secret=k"
    assert ingest["webrtc_url"] == "webrtc://vm:8443/live/abc?schema=https&secret=k"
    assert config["PUBLIC_URL"] == "http://127.0.0.1:5000"  # pages stay where they were


def test_a_webrtc_origin_the_developer_sets_wins(monkeypatch):
    env = studio_env_with(
        "https://vm:8443", monkeypatch, STUDIO_WEBRTC_ORIGIN="https://box.lan:8443"
    )
    assert env["STUDIO_WEBRTC_ORIGIN"] == "https://box.lan:8443"


def test_without_an_https_site_the_public_origin_is_used(monkeypatch):
    monkeypatch.delenv("STUDIO_WEBRTC_ORIGIN", raising=False)
    env = studio_env_with("", monkeypatch)
    assert "STUDIO_WEBRTC_ORIGIN" not in env
