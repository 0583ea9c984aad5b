"""Publishes of the studio's websocket relay (ffmpeg publishing RTMP with
`ingest=websocket` in its URL) are recorded as websocket broadcasts by both
engines' callbacks."""

from __future__ import annotations

from studio.media.engines.nginx_rtmp import nginx_callback
from studio.media.engines.srs import srs_callback
from tests.conftest import load_fixture


def test_srs_rtmp_publish_of_the_relay_is_a_websocket_ingest():
    body = load_fixture("on_publish.json")
    body["param"] = "?secret=abc&ingest=websocket"
    assert srs_callback(body).protocol == "websocket"
    assert srs_callback(body).secret == "abc"


def test_srs_plain_rtmp_publish_stays_rtmp():
    assert srs_callback(load_fixture("on_publish.json")).protocol == "rtmp"


def test_srs_whip_publish_stays_webrtc_even_if_it_claims_websocket():
    """Only an RTMP publish can be the relay; a WHIP param cannot fake it."""
    body = load_fixture("on_publish_whip.json")
    body["param"] += "&ingest=websocket"
    assert srs_callback(body).protocol == "webrtc"


def test_nginx_rtmp_form_field_marks_the_relay():
    form = {
        "call": "publish",
        "app": "live",
        "name": "abc",
        "clientid": "7",
        "secret": "k",
        "ingest": "websocket",
    }
    assert nginx_callback(form).protocol == "websocket"
