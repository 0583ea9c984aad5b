"""SRS's on_play: who may play a stream straight from the media server.

The body is SRS 5's on_play as srs5-contract.md records it (RTMP player),
renamed to the test's stream."""

from __future__ import annotations

import json

import pytest

from studio.streams.tickets import PLAY_GRANT_TTL, check_play_grant, mint_play_grant

URL = "/hooks/srs?token=test-hook-token"
ON_PLAY = {
    "server_id": "vid-k21d7y2",
    "service_id": "z8t2p4q1",
    "action": "on_play",
    "client_id": "9f0d2k1m",
    "ip": "198.51.100.9",
    "vhost": "__defaultVhost__",
    "app": "live",
    "stream": "cam1",
    "tcUrl": "rtmp://192.168.1.50:1935/live",
    "param": "?token=t1",
    "pageUrl": "",
    "stream_url": "/live/cam1",
    "stream_id": "vid-0h3m2x9",
}


@pytest.fixture()
def stream_with(db, make_stream):
    def factory(visibility: str = "public"):
        stream = make_stream()
        stream.visibility = visibility
        db.session.commit()
        return stream

    return factory


def play(client, stream: str, param: str = "", **changes):
    body = ON_PLAY | {"stream": stream, "param": param, "stream_url": f"/live/{stream}"} | changes
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def code(reply) -> int:
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()["code"]


@pytest.mark.parametrize("visibility", ["public", "unlisted"])
def test_public_and_unlisted_streams_play_from_the_media_server(client, stream_with, visibility):
    """Anyone with the id plays them, as their HLS and WHEP URLs allow."""
    stream = stream_with(visibility)
    assert code(play(client, stream.public_id)) == 0


def test_a_private_stream_is_refused_to_players_without_a_grant(app, client, stream_with):
    """A private stream is watched through the studio's signed cookies: the
    media server does not play it to someone who only knows its id, nor to
    one with a forged, another stream's or an expired grant."""
    stream, other = stream_with("private"), stream_with("private")
    key = app.config["SECRET_KEY"]
    expired = mint_play_grant(key, stream.public_id, now=0)
    for param in (
        "",
        "?grant=",
        "?grant=123.abc",
        f"?grant={mint_play_grant('another-key', stream.public_id)}",
        f"?grant={mint_play_grant(key, other.public_id)}",
        f"?grant={expired}",
        "?grant=" + "9" * 5000,
    ):
        reply = play(client, stream.public_id, param)
        assert code(reply) == 403, param
        assert "private" in reply.get_json()["error"]


def test_the_multistream_relay_plays_a_private_stream_with_its_grant(app, client, stream_with):
    stream = stream_with("private")
    grant = mint_play_grant(app.config["SECRET_KEY"], stream.public_id)
    assert code(play(client, stream.public_id, f"?grant={grant}")) == 0


def test_unknown_streams_and_apps_are_refused(client, stream_with):
    stream = stream_with()
    assert code(play(client, "nosuchstream")) == 403
    reply = play(client, stream.public_id, app="other")
    assert code(reply) == 403
    assert reply.get_json()["error"] == "Play refused: unknown app 'other'."


@pytest.mark.parametrize(
    "changes",
    [{"stream": 5}, {"app": None}, {"param": ["x"]}, {"stream": "a\x00b" * 10}],
)
def test_malformed_on_play_is_400(client, changes):
    body = ON_PLAY | changes
    reply = client.post(URL, data=json.dumps(body), content_type="application/json")
    assert reply.status_code == 400


def test_a_grant_expires_and_names_one_stream():
    now = 1_000_000.0
    grant = mint_play_grant("k", "s1", now=now)
    assert check_play_grant("k", "s1", grant, now=now + PLAY_GRANT_TTL)
    assert not check_play_grant("k", "s1", grant, now=now + PLAY_GRANT_TTL + 1)
    assert not check_play_grant("k", "s2", grant, now=now)
    assert not check_play_grant("other", "s1", grant, now=now)


def test_the_relays_playback_url_is_accepted_by_on_play(app, client, stream_with):
    """The URL a multistream relay plays (a fresh grant per attempt), handed
    to SRS, comes back in on_play's `param` and is accepted for a private
    stream."""
    from urllib.parse import urlsplit

    from workers.multistream import playback_source

    stream = stream_with("private")
    source = playback_source("rtmp://media:1935/live", app.config["SECRET_KEY"], stream.public_id)
    url = urlsplit(source())
    assert url.path == f"/live/{stream.public_id}"
    assert code(play(client, stream.public_id, f"?{url.query}")) == 0
