"""The stream key is a secret: only its owner ever sees it, it never reaches the
logs, and rotating it locks the old key out of publishing."""

from __future__ import annotations

import json
import logging
import re

import pytest
from sqlalchemy import select

from studio.models import Broadcast, utcnow
from tests.api.helpers import Api
from tests.conftest import csrf_token, load_fixture

HOOK_URL = "/hooks/srs?token=test-hook-token"


def publish_body(stream, key: str, action: str = "on_publish", client_id: str = "q15382k9"):
    """The recorded SRS 5 callback with this stream's id and `key` patched in."""
    body = load_fixture(f"{action}.json")
    body.update(
        stream=stream.public_id,
        param=f"?secret={key}",
        stream_url=f"/live/{stream.public_id}",
        client_id=client_id,
    )
    return body


def hook(client, body):
    return client.post(HOOK_URL, data=json.dumps(body), content_type="application/json")


@pytest.fixture()
def bob_stream(make_user, make_stream):
    return make_stream(make_user("bob@example.com"), "Bob's stream")


def test_watch_pages_never_show_the_key(app, client, db, bob_stream, use_engine):
    """Every public viewer page (home, watch page, replay page, embed,
    fragments, the WebRTC viewer's ICE servers) omits the key, with the
    stream live and with a replay, on SRS (where every one of them answers)."""
    use_engine("srs")
    ended = Broadcast(
        stream=bob_stream,
        client_id="c1",
        protocol="rtmp",
        ended_at=utcnow(),
        replay_ready_at=utcnow(),
        thumbnail_at=utcnow(),
    )
    live = Broadcast(stream=bob_stream, client_id="c2", protocol="rtmp")
    bob_stream.status, bob_stream.thumbnail_at = "live", utcnow()
    db.session.add_all([ended, live])
    db.session.commit()
    rules = [
        r.rule
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("watch.") and "GET" in r.methods
    ]
    assert {"/", "/watch/<public_id>", "/embed/<public_id>"} <= set(rules)
    for rule in rules:
        path = rule.replace("<public_id>", bob_stream.public_id)
        reply = client.get(path.replace("<int:broadcast_id>", str(ended.id)))
        assert reply.status_code == 200, path
        html = reply.get_data(as_text=True)
        assert bob_stream.stream_key not in html
        assert "secret" not in html.lower()


def test_no_response_to_a_non_owner_contains_the_key(
    app, client, db, auth, bob_stream, make_user, make_token
):
    """Alice, logged in and with a token, gets nothing with Bob's key in it from any
    page or API route about Bob's stream (including the API list)."""
    alice = make_user("alice@example.com")
    api = Api(client, make_token(alice))
    auth.login("alice@example.com")
    form = {"csrf_token": auth.form_token("/"), "title": "x", "disabled": "1"}
    replies = [api.get("/streams"), api.get(f"/streams/{bob_stream.public_id}")]
    for rule in app.url_map.iter_rules():
        if "<public_id>" not in rule.rule and "<stream_id>" not in rule.rule:
            continue
        path = re.sub(r"<(public_id|stream_id)>", bob_stream.public_id, rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            headers = api.headers() if path.startswith("/api/") else {}
            replies.append(client.open(path, method=method, data=form, headers=headers))
    assert len(replies) > 10
    for reply in replies:
        assert bob_stream.stream_key not in reply.get_data(as_text=True)


def test_publish_logs_never_contain_the_key(client, db, bob_stream, caplog):
    """Accepted and refused publishes and the unpublish log nothing with the key,
    at any level."""
    caplog.set_level(logging.DEBUG)
    assert hook(client, publish_body(bob_stream, "wrong-key")).get_json()["code"] != 0
    assert hook(client, publish_body(bob_stream, bob_stream.stream_key)).get_json()["code"] == 0
    assert (
        hook(client, publish_body(bob_stream, bob_stream.stream_key, "on_unpublish")).get_json()[
            "code"
        ]
        == 0
    )
    assert "publish accepted" in caplog.text and "publish refused" in caplog.text
    assert bob_stream.stream_key not in caplog.text


def test_rotating_through_the_page_locks_out_the_old_key(client, db, auth, make_user, make_stream):
    """After Rotate key on the stream page the old key is refused by /hooks/srs and
    the new key is accepted."""
    owner = make_user("owner@example.com")
    stream = make_stream(owner)
    old_key = stream.stream_key
    auth.login("owner@example.com")
    page = f"/streams/{stream.public_id}"
    reply = client.post(
        page + "/rotate-key",
        data={"csrf_token": csrf_token(client.get(page).get_data(as_text=True))},
    )
    assert reply.status_code == 302
    db.session.refresh(stream)
    new_key = stream.stream_key
    assert new_key != old_key
    assert client.get(page + "/key").get_json()["stream_key"].endswith(f"secret={new_key}")

    refused = hook(client, publish_body(stream, old_key))
    assert refused.status_code == 200 and refused.get_json()["code"] != 0
    db.session.refresh(stream)
    assert stream.status == "created"
    assert db.session.scalar(select(Broadcast)) is None

    accepted = hook(client, publish_body(stream, new_key, client_id="new-client"))
    assert accepted.get_json()["code"] == 0
    db.session.refresh(stream)
    assert stream.status == "live"
