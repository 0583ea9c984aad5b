"""SRS 5 callbacks replayed from recorded fixtures against /hooks/srs."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from studio.models import Broadcast, Stream
from tests.conftest import load_fixture

TOKEN = "test-hook-token"
URL = f"/hooks/srs?token={TOKEN}"


@pytest.fixture()
def srs_stream(db, make_stream):
    """A stream named like the fixtures' stream with the fixtures' key."""

    def factory(name: str = "sk_test123", key: str = "abc", **changes) -> Stream:
        stream = make_stream()
        stream.public_id = name
        stream.stream_key = key
        for field, value in changes.items():
            setattr(stream, field, value)
        db.session.commit()
        return stream

    return factory


def post(client, body, url=URL):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def accepted(reply) -> bool:
    return reply.status_code == 200 and reply.get_json()["code"] == 0


def counts(db):
    return (
        db.session.scalar(select(func.count(Broadcast.id))),
        db.session.scalars(select(Stream.status).order_by(Stream.id)).all(),
    )


def test_rtmp_publish_fixture_goes_live(client, db, srs_stream):
    """on_publish.json with the current key: accepted, stream live, broadcast recorded."""
    stream = srs_stream()
    reply = post(client, load_fixture("on_publish.json"))
    assert accepted(reply)
    db.session.refresh(stream)
    assert stream.status == "live"
    broadcast = db.session.scalar(select(Broadcast))
    assert broadcast.client_id == "q15382k9"
    assert broadcast.protocol == "rtmp"
    assert broadcast.server_id == "vid-85s3ru9"
    assert broadcast.service_id == "69ughz8g"
    assert broadcast.ended_at is None


def test_whip_publish_fixture_goes_live_as_webrtc(client, db, srs_stream):
    """on_publish_whip.json (param without '?', empty tcUrl) is a WebRTC publish."""
    stream = srs_stream(name="whiptest")
    assert accepted(post(client, load_fixture("on_publish_whip.json")))
    db.session.refresh(stream)
    assert stream.status == "live"
    assert db.session.scalar(select(Broadcast.protocol)) == "webrtc"


def test_denied_fixture_is_refused(client, db, srs_stream):
    """on_publish_denied.json carries a wrong key: refused, nothing changes."""
    stream = srs_stream(name="deny_me", key="the-real-key")
    reply = post(client, load_fixture("on_publish_denied.json"))
    assert reply.status_code == 200
    assert reply.get_json()["code"] != 0
    db.session.refresh(stream)
    assert stream.status == "created"
    assert counts(db)[0] == 0


def test_unpublish_fixture_ends_the_broadcast(client, db, srs_stream):
    """on_unpublish.json ends the broadcast of its client id: status ended."""
    stream = srs_stream()
    post(client, load_fixture("on_publish.json"))
    assert accepted(post(client, load_fixture("on_unpublish.json")))
    db.session.refresh(stream)
    assert stream.status == "ended"
    broadcast = db.session.scalar(select(Broadcast))
    assert broadcast.ended_at is not None
    assert broadcast.end_reason == "unpublish"


def test_hls_fixture_is_accepted(client, db, srs_stream):
    """on_hls.json is accepted (SRS ignores failures, but we answer 0)."""
    srs_stream()
    post(client, load_fixture("on_publish.json"))
    assert accepted(post(client, load_fixture("on_hls.json")))


def test_unknown_stream_is_refused(client, db):
    """A publish for a stream that does not exist is refused."""
    reply = post(client, load_fixture("on_publish.json"))
    assert reply.get_json()["code"] != 0
    assert counts(db) == (0, [])


def test_other_app_is_refused(client, db, srs_stream):
    """Only the `live` app is published; any other app is refused."""
    srs_stream()
    body = load_fixture("on_publish.json") | {"app": "other"}
    assert not accepted(post(client, body))
    assert counts(db) == (0, ["created"])


@pytest.mark.parametrize(
    "url",
    ["/hooks/srs", "/hooks/srs?token=", "/hooks/srs?token=wrong"],
)
def test_missing_or_wrong_token_is_403_without_change(client, db, srs_stream, url):
    """Without the hook token the callback is refused with 403 and changes nothing."""
    srs_stream()
    reply = post(client, load_fixture("on_publish.json"), url=url)
    assert reply.status_code == 403
    assert "token" in reply.get_json()["error"].lower()
    assert counts(db) == (0, ["created"])


@pytest.mark.parametrize(
    "body, message",
    [
        ("not json", "JSON object"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"client_id": "x"}), "action"),
        (json.dumps({"action": "on_fly", "client_id": "x"}), "Unknown action"),
        (json.dumps({"action": "on_publish", "client_id": "x", "app": "live"}), "stream"),
        (json.dumps({"action": "on_publish", "client_id": 5, "app": "live"}), "client_id"),
        (
            json.dumps(
                {"action": "on_publish", "client_id": "x", "app": "live", "stream": 3, "param": ""}
            ),
            "stream",
        ),
        (
            json.dumps(load_fixture("on_hls.json") | {"seq_no": "7"}),
            "seq_no",
        ),
    ],
)
def test_malformed_body_is_400_without_change(client, db, srs_stream, body, message):
    """Malformed JSON or missing fields: 400 with a message naming the problem."""
    srs_stream()
    reply = client.post(URL, data=body, content_type="application/json")
    assert reply.status_code == 400
    assert message in reply.get_json()["error"]
    assert counts(db) == (0, ["created"])
