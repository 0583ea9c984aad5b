"""What the watch page and the embed are told about WebRTC playback (WHEP):
offered on SRS only, started automatically under the per-stream viewer cap,
and the viewer's own short-lived TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

import pytest

from studio import viewers

TURN = {
    "STUN_URLS": ["stun:turn.studio.test:3478"],
    "TURN_URLS": ["turn:turn.studio.test:3478?transport=udp"],
    "TURN_SECRET": "coturn-shared-secret",
    "TURN_TTL": 600,
}


@pytest.fixture()
def srs(app, use_engine, monkeypatch):
    use_engine("srs", WHEP_MAX_VIEWERS=2, WHEP_TIMEOUT=4.0)
    for key, value in TURN.items():
        monkeypatch.setitem(app.config, key, value)


def attribute(html: str, name: str) -> str | None:
    found = re.search(rf'{name}="([^"]*)"', html)
    return found.group(1) if found else None


def watching(redis, public_id: str, count: int) -> None:
    """`count` viewers with an open watch socket (as the socket tier marks them)."""
    now = time.time()
    redis.zadd(viewers.key(public_id), {f"test:{n}": now for n in range(count)})


def test_on_nginx_rtmp_the_page_offers_no_webrtc(client, make_stream):
    """nginx-rtmp plays HLS only: no WHEP URL, no mode switch, no viewer ICE."""
    stream = make_stream()
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert "data-whep-url" not in html
    assert 'data-testid="playback-mode"' not in html
    assert client.get(f"/watch/{stream.public_id}/ice-servers").status_code == 404


@pytest.mark.parametrize("page", ["watch", "embed"])
def test_on_srs_the_player_offers_whep_and_starts_in_it(client, srs, make_stream, page):
    """On SRS the player names the WHEP endpoint (no secret), its ICE servers,
    the timeout and the cap, and starts in WebRTC with nobody else watching."""
    stream = make_stream()
    html = client.get(f"/{page}/{stream.public_id}").get_data(as_text=True)
    assert attribute(html, "data-whep-url") == (
        f"https://studio.test/rtc/v1/whep/?app=live&amp;stream={stream.public_id}"
    )
    assert attribute(html, "data-whep-base") == ""  # the page posts to its own origin
    assert attribute(html, "data-whep-ice-url") == f"/watch/{stream.public_id}/ice-servers"
    assert attribute(html, "data-whep-max-viewers") == "2"
    assert attribute(html, "data-whep-timeout") == "4.0"
    assert attribute(html, "data-whep-auto") == "true"
    assert 'data-testid="playback-mode"' in html
    assert stream.stream_key not in html


def test_at_the_cap_the_page_starts_in_hls(client, redis, srs, make_stream):
    """With as many viewers as STUDIO_WHEP_MAX_VIEWERS, a new viewer starts in
    HLS (WebRTC still offered for when room frees up); one fewer: WebRTC."""
    stream = make_stream()
    watching(redis, stream.public_id, 1)
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert attribute(html, "data-whep-auto") == "true"
    watching(redis, stream.public_id, 2)
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert attribute(html, "data-whep-auto") == "false"
    assert attribute(html, "data-viewers") == "2"
    assert attribute(html, "data-whep-url") is not None


def test_whep_turned_off_by_a_zero_cap(client, use_engine, make_stream):
    """STUDIO_WHEP_MAX_VIEWERS=0: HLS only, even on SRS."""
    use_engine("srs", WHEP_MAX_VIEWERS=0)
    stream = make_stream()
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert "data-whep-url" not in html
    assert client.get(f"/watch/{stream.public_id}/ice-servers").status_code == 404


def test_viewer_gets_own_turn_credentials_without_login(client, srs, make_stream):
    """Anyone watching gets STUN and TURN with credentials of their own
    (`{expiry}:viewer-{random}`, valid STUDIO_TURN_TTL), never cached."""
    stream = make_stream()
    before = int(time.time())
    first = client.get(f"/watch/{stream.public_id}/ice-servers")
    second = client.get(f"/watch/{stream.public_id}/ice-servers")
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    stun, turn = first.get_json()["iceServers"]
    assert stun == {"urls": TURN["STUN_URLS"]}
    assert turn["urls"] == TURN["TURN_URLS"]
    expiry, who = turn["username"].split(":")
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    assert re.fullmatch(r"viewer-[0-9a-f]{12}", who)
    digest = hmac.new(b"coturn-shared-secret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    assert second.get_json()["iceServers"][1]["username"] != turn["username"]
    assert stream.stream_key not in first.get_data(as_text=True)


def test_viewer_ice_servers_of_unknown_stream_is_404(client, srs):
    assert client.get("/watch/nosuchstream0000/ice-servers").status_code == 404


def test_csp_lets_the_page_reach_another_whep_endpoint(app, client, srs, monkeypatch, make_stream):
    """With STUDIO_WHEP_URL on another origin the page may post there."""
    from studio import security

    monkeypatch.setitem(app.config, "WHEP_URL", "https://rtc.example.net:1990/rtc/v1/whep/")
    policy = security.content_security_policy(app)
    connect = next(d for d in policy.split("; ") if d.startswith("connect-src"))
    assert "https://rtc.example.net:1990" in connect.split()


def test_creator_page_shows_the_whep_url_on_srs_only(
    client, auth, make_user, make_stream, use_engine
):
    """The stream page lists the WHEP URL (for other players) where it exists."""
    owner = make_user()
    stream = make_stream(owner)
    auth.login(owner.email)
    html = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert 'data-testid="whep-url"' not in html
    use_engine("srs")
    html = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert (
        f'data-testid="whep-url">https://studio.test/rtc/v1/whep/?app=live&amp;stream='
        f"{stream.public_id}</code>"
    ) in html


def test_a_private_stream_offers_no_webrtc_playback(client, auth, db, srs, make_user, make_stream):
    """WHEP carries no credential the studio could check: a private stream
    plays only from the CDN with its signed cookie, even for its owner."""
    from studio.streams import access

    owner = make_user()
    stream = make_stream(owner=owner)
    access.set_visibility(db.session, stream, "private")
    db.session.commit()
    auth.login(owner.email)
    html = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert "data-whep-url" not in html
    assert client.get(f"/watch/{stream.public_id}/ice-servers").status_code == 404
