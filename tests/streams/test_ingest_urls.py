"""The ingest settings on the stream page and in /streams/<id>/key: WebRTC URLs
only where the media engine takes WebRTC, built on the origin where nginx
passes SRS's WebRTC endpoints; elsewhere the page says why there are none."""

from __future__ import annotations

import pytest

from studio import config as studio_config

UNAVAILABLE = "WebRTC publishing is not offered by this server's media engine (nginx-rtmp)."


@pytest.fixture()
def owner_stream(auth, make_user, make_stream):
    owner = make_user()
    stream = make_stream(owner)
    assert auth.login(owner.email).status_code == 302
    return stream


def page_text(client, stream) -> str:
    reply = client.get(f"/streams/{stream.public_id}")
    assert reply.status_code == 200
    return " ".join(reply.get_data(as_text=True).split())


def test_on_nginx_rtmp_the_page_says_webrtc_is_not_offered(client, app, owner_stream):
    """nginx-rtmp has no WebRTC: no WebRTC or WHIP field that could not work,
    a sentence saying why, and the key endpoint gives null URLs."""
    assert app.config["MEDIA_ENGINE"] == "nginx-rtmp"
    text = page_text(client, owner_stream)
    assert UNAVAILABLE in text
    assert 'id="webrtc-url"' not in text and 'id="whip-url"' not in text
    assert 'id="srt-url"' not in text  # nor SRT
    assert 'data-testid="open-golive"' in text  # the browser still goes live (websocket)
    settings = client.get(f"/streams/{owner_stream.public_id}/key").get_json()
    assert settings["protocols"] == ["rtmp"]
    assert settings["webrtc_url"] is None and settings["whip_url"] is None
    assert settings["srt_url"] is None
    assert settings["stream_key"].endswith(owner_stream.stream_key)


def test_on_srs_the_page_offers_webrtc_urls_on_the_webrtc_origin(
    client, app, owner_stream, use_engine
):
    use_engine("srs", SRT_URL="srt://ingest.studio.test:10080")
    text = page_text(client, owner_stream)
    assert UNAVAILABLE.split(" (")[0] not in text
    assert 'id="webrtc-url"' in text and 'id="whip-url"' in text
    assert 'id="srt-url"' in text  # SRS takes SRT too
    assert owner_stream.stream_key not in text  # revealed on demand only
    settings = client.get(f"/streams/{owner_stream.public_id}/key").get_json()
    assert settings["protocols"] == ["rtmp", "webrtc", "srt"]
    assert settings["srt_url"] == (
        f"srt://ingest.studio.test:10080?streamid=#!::r=live/{owner_stream.public_id}"
        f"?secret={owner_stream.stream_key},m=publish"
    )
    assert settings["whip_url"].startswith(app.config["WEBRTC_ORIGIN"] + "/rtc/v1/whip/?app=live&")


def test_the_srt_host_defaults_to_the_rtmp_host_on_port_10080():
    """Without STUDIO_SRT_URL, SRT is handed out on the RTMP ingest's host."""
    config = studio_config.from_environ({"STUDIO_RTMP_URL": "rtmp://ingest.example.com:1935/live"})
    assert config["SRT_URL"] == "srt://ingest.example.com:10080"
    config = studio_config.from_environ({"STUDIO_SRT_URL": "srt://srt.example.com:9000/"})
    assert config["SRT_URL"] == "srt://srt.example.com:9000"


def test_webrtc_urls_default_to_the_public_origin_even_when_compose_passes_empty_values():
    """docker-compose.yml passes STUDIO_WEBRTC_HOST and STUDIO_WEBRTC_ORIGIN as ""
    when unset: that means "the studio's origin", never an empty host."""
    config = studio_config.from_environ(
        {
            "STUDIO_PUBLIC_URL": "https://studio.example.com/",
            "STUDIO_WEBRTC_HOST": "",
            "STUDIO_WEBRTC_ORIGIN": "",
        }
    )
    assert config["WEBRTC_ORIGIN"] == "https://studio.example.com"
    assert config["WEBRTC_HOST"] == "studio.example.com"


def test_a_webrtc_origin_of_its_own_names_host_and_port_for_the_sdk():
    """`make dev` hands out its HTTPS site (another port than the pages)."""
    config = studio_config.from_environ(
        {"STUDIO_PUBLIC_URL": "http://127.0.0.1:5000", "STUDIO_WEBRTC_ORIGIN": "https://vm:8443/"}
    )
    assert config["WEBRTC_ORIGIN"] == "https://vm:8443"
    assert config["WEBRTC_HOST"] == "vm:8443"
