"""The go-live page and the ICE servers it asks for: owner only, TURN
credentials in coturn's use-auth-secret scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from studio.media.ice import ice_servers, turn_credentials

TURN = {
    "STUN_URLS": ["stun:turn.studio.test:3478"],
    "TURN_URLS": ["turn:turn.studio.test:3478?transport=udp", "turns:turn.studio.test:5349"],
    "TURN_SECRET": "coturn-shared-secret",
    "TURN_TTL": 600,
}


@pytest.fixture()
def turn_config(app, monkeypatch):
    for key, value in TURN.items():
        monkeypatch.setitem(app.config, key, value)


def test_turn_credentials_follow_the_coturn_rest_scheme():
    """username = expiry:user id; credential = base64(HMAC-SHA1(secret, username))."""
    credentials = turn_credentials("s3cret", 42, ttl=600, now=1_700_000_000)
    assert credentials["username"] == "1700000600:42"
    expected = hmac.new(b"s3cret", b"1700000600:42", hashlib.sha1).digest()
    assert base64.b64decode(credentials["credential"]) == expected


def test_no_turn_without_a_secret():
    """TURN URLs without the shared secret would hand out useless credentials."""
    servers = ice_servers({**TURN, "TURN_SECRET": ""}, 1)
    assert servers == [{"urls": TURN["STUN_URLS"]}]


def test_owner_gets_ice_servers_with_fresh_turn_credentials(
    client, auth, make_user, make_stream, turn_config
):
    owner = make_user()
    stream = make_stream(owner)
    auth.login(owner.email)
    reply = client.get(f"/streams/{stream.public_id}/ice-servers")
    assert reply.status_code == 200
    assert reply.headers["Cache-Control"] == "no-store"
    stun, turn = reply.get_json()["iceServers"]
    assert stun == {"urls": TURN["STUN_URLS"]}
    assert turn["urls"] == TURN["TURN_URLS"]
    expiry, user_id = turn["username"].split(":")
    assert user_id == str(owner.id)
    digest = hmac.new(b"coturn-shared-secret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    assert reply.get_json()["ttl"] == 600


def test_another_user_gets_no_turn_credentials(client, auth, make_user, make_stream, turn_config):
    """Someone else's stream is a 404 (no existence leak), without credentials."""
    stream = make_stream()
    auth.login(make_user().email)
    reply = client.get(f"/streams/{stream.public_id}/ice-servers")
    assert reply.status_code == 404
    assert b"credential" not in reply.data


def test_anonymous_gets_no_turn_credentials(client, make_stream, turn_config):
    stream = make_stream()
    reply = client.get(f"/streams/{stream.public_id}/ice-servers")
    assert reply.status_code == 302
    assert "/login" in reply.headers["Location"]
    assert b"credential" not in reply.data


def test_go_live_page_says_which_engine_and_hides_the_key(client, auth, make_user, make_stream):
    """The page knows the engine (WHIP only for SRS) and fetches the key on
    demand instead of carrying it in the HTML."""
    owner = make_user()
    stream = make_stream(owner)
    auth.login(owner.email)
    page = client.get(f"/streams/{stream.public_id}/live").get_data(as_text=True)
    assert 'data-engine="nginx-rtmp"' in page
    assert 'data-whip="false"' in page
    assert f'data-ingest-path="/ws/ingest/{stream.public_id}"' in page
    assert stream.stream_key not in page


def test_go_live_page_offers_whip_on_srs(client, app, auth, make_user, make_stream, use_engine):
    use_engine("srs")
    owner = make_user()
    stream = make_stream(owner)
    auth.login(owner.email)
    page = client.get(f"/streams/{stream.public_id}/live").get_data(as_text=True)
    assert 'data-whip="true"' in page
    assert "within 5 seconds" in " ".join(page.split())  # the promised fallback time


def test_go_live_page_is_owner_only(client, auth, make_user, make_stream):
    stream = make_stream()
    auth.login(make_user().email)
    assert client.get(f"/streams/{stream.public_id}/live").status_code == 404
