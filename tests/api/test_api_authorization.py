"""Who may call the API: only a valid bearer token, and only on its owner's streams."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from studio.auth import service as accounts
from studio.models import ApiToken
from tests.api.helpers import Api
from tests.dbstate import snapshot

# (method, path, body) for every endpoint that takes a stream id.
STREAM_CALLS = [
    ("GET", "/streams/{id}", None),
    ("PATCH", "/streams/{id}", {"title": "Taken over"}),
    ("PATCH", "/streams/{id}", {"disabled": True}),
    ("DELETE", "/streams/{id}", None),
    ("POST", "/streams/{id}/rotate-key", None),
    ("POST", "/streams/{id}/end", None),
    ("GET", "/streams/{id}/broadcasts", None),
]
ALL_CALLS = [("POST", "/streams", {"title": "New"}), ("GET", "/streams", None), *STREAM_CALLS]


@pytest.fixture()
def alice(make_user):
    return make_user("alice@example.com")


@pytest.fixture()
def bob_stream(make_user, make_stream):
    return make_stream(make_user("bob@example.com"), "Bob's stream")


@pytest.mark.parametrize("method, path, body", ALL_CALLS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "Bearer lst_not-a-real-token",
        "Bearer not-even-the-prefix",
        "Token lst_whatever",
    ],
)
def test_no_valid_token_is_401_and_changes_nothing(
    client, db, bob_stream, method, path, body, authorization
):
    """Without a valid bearer token every endpoint answers 401 (WWW-Authenticate:
    Bearer, a JSON message) and changes nothing."""
    before = snapshot(db)
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = Api(client, None).call(
        method, path.format(id=bob_stream.public_id), body, headers=headers
    )
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" in reply.get_json()["error"].lower()
    assert snapshot(db) == before


def test_revoked_token_is_401(client, db, alice, make_token, make_stream):
    """A revoked token no longer authenticates."""
    stream = make_stream(alice)
    token = make_token(alice)
    api = Api(client, token)
    assert api.get(f"/streams/{stream.public_id}").status_code == 200
    row = db.session.scalar(select(ApiToken).where(ApiToken.user_id == alice.id))
    accounts.revoke_api_token(db.session, alice, row.id)
    db.session.commit()
    reply = api.get(f"/streams/{stream.public_id}")
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_session_cookie_does_not_authenticate_the_api(client, db, auth, alice, make_stream):
    """A logged-in browser without a token gets 401: cookies never authenticate the
    API, so a cross-site request cannot use them (no CSRF token needed)."""
    stream = make_stream(alice)
    assert auth.login("alice@example.com").status_code == 302
    assert client.get(f"/streams/{stream.public_id}").status_code == 200  # the session works
    before = snapshot(db)
    assert client.get("/api/v1/streams").status_code == 401
    reply = client.post(f"/api/v1/streams/{stream.public_id}/rotate-key")
    assert reply.status_code == 401
    assert snapshot(db) == before


@pytest.mark.parametrize("method, path, body", STREAM_CALLS)
def test_another_users_stream_is_404_like_a_missing_one(
    client, db, alice, make_token, bob_stream, method, path, body
):
    """Alice's token on Bob's stream: 404 with the same body as a stream that does
    not exist, and Bob's rows are unchanged."""
    api = Api(client, make_token(alice))
    before = snapshot(db)
    reply = api.call(method, path.format(id=bob_stream.public_id), body)
    missing = api.call(method, path.format(id="doesnotexist0000"), body)
    assert reply.status_code == missing.status_code == 404
    assert reply.get_json() == missing.get_json() == {"error": "Stream not found.", "fields": {}}
    assert snapshot(db) == before
    assert bob_stream.stream_key not in reply.get_data(as_text=True)


def test_list_never_shows_another_users_streams_or_keys(client, db, alice, make_token, bob_stream):
    """Alice's list holds her streams only; Bob's id and key appear nowhere in it."""
    api = Api(client, make_token(alice))
    api.post("/streams", {"title": "Alice's"})
    reply = api.get("/streams")
    assert [s["title"] for s in reply.get_json()["streams"]] == ["Alice's"]
    text = reply.get_data(as_text=True)
    assert bob_stream.public_id not in text
    assert bob_stream.stream_key not in text


def test_a_token_reaches_only_its_owners_streams(client, db, alice, make_token, bob_stream):
    """Each token acts as its owner: Bob's token sees Bob's stream, Alice's does not."""
    alice_api = Api(client, make_token(alice))
    bob_api = Api(client, make_token(bob_stream.owner))
    path = f"/streams/{bob_stream.public_id}"
    assert bob_api.get(path).status_code == 200
    assert alice_api.get(path).status_code == 404
    created = alice_api.post("/streams", {"title": "Alice's"}).get_json()
    assert bob_api.get(f"/streams/{created['id']}").status_code == 404
    assert alice_api.get(f"/streams/{created['id']}").status_code == 200


@pytest.mark.parametrize(
    "path, allowed",
    [("/streams", {"GET", "POST"}), ("/streams/{id}/rotate-key", {"POST"})],
)
def test_options_lists_the_methods_without_a_token(client, db, bob_stream, path, allowed):
    """OPTIONS (how a client learns a route's methods) needs no token, takes no
    body and changes nothing: 200 with the route's methods in Allow."""
    before = snapshot(db)
    reply = client.options("/api/v1" + path.format(id=bob_stream.public_id))
    assert reply.status_code == 200
    assert allowed <= {m.strip() for m in reply.headers["Allow"].split(",")}
    assert snapshot(db) == before
