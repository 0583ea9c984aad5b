"""The chat API: public history with paging, moderation endpoints and who
may call each, against the real PostgreSQL and Redis."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select

from studio.chat import moderation
from studio.chat import service as chat
from studio.live.chat import limits
from studio.models import (
    ChatBan,
    ChatMessage,
    ChatModerationAction,
    ChatModerator,
)
from tests.api.helpers import Api
from tests.live.test_websocket import publish


@pytest.fixture()
def live(client, owner, make_stream, redis):
    stream = make_stream(owner)
    publish(client, stream)
    return stream


def say(app, db, stream, text: str, anon: str | None = None, user=None) -> ChatMessage:
    """A message posted through the chat service, as the socket does."""
    author = chat.Author(
        address="192.0.2.7", user=user, anon=anon or secrets.token_urlsafe(16), name="Viewer"
    )
    message = chat.post_message(
        db.session,
        stream.public_id,
        author,
        text,
        secret=app.config["SECRET_KEY"],
        limits=limits(app),
    )
    db.session.commit()
    return message


def count(db, model) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def test_history_is_public_and_paged(app, client, db, live):
    """No token needed; oldest first; `before` pages back, `after` reads
    forward; deleted messages are left out; each has its offset."""
    ids = [say(app, db, live, f"message {n}", anon="a" * 16 + str(n)).id for n in range(7)]
    moderation.delete_message(db.session, live, live.owner, ids[3])
    db.session.commit()
    anyone = Api(client, None)

    page = anyone.get(f"/streams/{live.public_id}/chat?limit=3")
    assert page.status_code == 200
    body = page.get_json()
    assert [m["text"] for m in body["messages"]] == ["message 4", "message 5", "message 6"]
    assert body["has_more"] is True
    first = body["messages"][0]
    assert set(first) == {
        "id",
        "participant",
        "name",
        "signed_in",
        "text",
        "sent_at",
        "broadcast",
        "offset",
    }
    assert first["offset"] >= 0 and first["broadcast"] is not None

    older = anyone.get(f"/streams/{live.public_id}/chat?limit=3&before={ids[4]}").get_json()
    assert [m["text"] for m in older["messages"]] == ["message 0", "message 1", "message 2"]
    assert older["has_more"] is False
    forward = anyone.get(f"/streams/{live.public_id}/chat?after=0&limit=4").get_json()
    assert [m["text"] for m in forward["messages"]] == [
        "message 0",
        "message 1",
        "message 2",
        "message 4",
    ]
    broadcast = first["broadcast"]
    only = anyone.get(f"/streams/{live.public_id}/chat?broadcast={broadcast}").get_json()
    assert len(only["messages"]) == 6
    none = anyone.get(f"/streams/{live.public_id}/chat?broadcast={broadcast + 1}").get_json()
    assert none == {"messages": [], "has_more": False}


def test_history_refuses_bad_queries_and_unknown_streams(client, db, live):
    anyone = Api(client, None)
    for query in ("limit=0", "limit=201", "before=x", "after=-1", "broadcast=99999999999", "z=1"):
        reply = anyone.get(f"/streams/{live.public_id}/chat?{query}")
        assert reply.status_code == 400, query
        assert reply.get_json()["error"] == "Invalid query parameters."
        assert reply.get_json()["fields"]
    reply = anyone.get("/streams/nosuchstream0000/chat")
    assert reply.status_code == 404
    assert reply.get_json() == {"error": "Stream not found.", "fields": {}}


def test_settings_are_validated_and_change_nothing_when_refused(api, db, live):
    path = f"/streams/{live.public_id}/chat/settings"
    assert api.get(path).get_json() == {"mode": "everyone", "slow_mode": 0, "blocklist": []}
    for body in (
        {"mode": "loud"},
        {"slow_mode": -1},
        {"slow_mode": 3601},
        {"slow_mode": "5"},
        {"blocklist": ["ok", ""]},
        {"blocklist": ["x" * 51]},
        {"blocklist": ["word"] * 201},
        {},
        {"mode": None},
        {"color": "red"},
    ):
        reply = api.patch(path, body)
        assert reply.status_code == 400, body
        assert reply.get_json()["error"]
    assert api.get(path).get_json() == {"mode": "everyone", "slow_mode": 0, "blocklist": []}
    changed = api.patch(path, {"mode": "signed_in", "slow_mode": 10, "blocklist": ["Darn", "darn"]})
    assert changed.get_json() == {"mode": "signed_in", "slow_mode": 10, "blocklist": ["Darn"]}


def test_bans_and_timeouts_through_the_api(app, api, db, live):
    viewer = say(app, db, live, "first", anon="b" * 20)
    bans = f"/streams/{live.public_id}/chat/bans"
    timed = api.post(
        f"/streams/{live.public_id}/chat/timeouts",
        {"participant": viewer.participant, "minutes": 3},
    )
    assert timed.status_code == 201
    assert timed.get_json()["kind"] == "timeout"
    with pytest.raises(chat.ChatRefused) as refused:
        say(app, db, live, "second", anon="b" * 20)
    assert refused.value.code == "timed_out"
    db.session.rollback()

    banned = api.post(bans, {"participant": viewer.participant})
    assert banned.get_json() == {**banned.get_json(), "kind": "ban", "expires_at": None}
    assert [b["kind"] for b in api.get(bans).get_json()["bans"]] == ["ban"]
    assert api.post(bans, {"participant": "a" + "0" * 20}).status_code == 404
    assert api.post(bans, {"participant": "not an id"}).status_code == 400
    assert api.delete(f"{bans}/{viewer.participant}").status_code == 204
    assert api.delete(f"{bans}/{viewer.participant}").status_code == 404
    assert say(app, db, live, "back again", anon="b" * 20).participant == viewer.participant


def test_a_refusal_carries_retry_after(app, api, db, live):
    """The rate limit of the service answers 429-like refusals with the
    seconds to wait (the socket shows them as retry_after)."""
    api.patch(f"/streams/{live.public_id}/chat/settings", {"slow_mode": 60})
    say(app, db, live, "one", anon="c" * 16)
    with pytest.raises(chat.ChatRefused) as refused:
        say(app, db, live, "two", anon="c" * 16)
    assert refused.value.code == "slow_mode"
    assert refused.value.status == 429
    assert 1 <= refused.value.retry_after <= 60


def test_chat_is_deleted_with_its_stream(app, api, db, live, make_user):
    """Messages, bans, moderators and the log go with the stream."""
    message = say(app, db, live, "soon gone")
    moderation.ban(db.session, live, live.owner, message.participant)
    moderation.appoint_moderator(db.session, live, live.owner, make_user().email)
    db.session.commit()
    assert count(db, ChatMessage) and count(db, ChatBan) and count(db, ChatModerator)
    assert api.delete(f"/streams/{live.public_id}").status_code == 204
    for model in (ChatMessage, ChatBan, ChatModerator, ChatModerationAction):
        assert count(db, model) == 0, model.__name__


def test_moderators_are_appointed_by_email(api, db, live, make_user):
    helper = make_user("Helper@Example.com")
    path = f"/streams/{live.public_id}/chat/moderators"
    created = api.post(path, {"email": "helper@example.com"})
    assert created.status_code == 201
    assert created.get_json()["email"] == helper.email
    again = api.post(path, {"email": helper.email})
    assert again.get_json()["id"] == created.get_json()["id"]
    assert [m["email"] for m in api.get(path).get_json()["moderators"]] == [helper.email]
    assert api.post(path, {"email": "nobody@example.com"}).status_code == 404
    assert api.post(path, {"email": live.owner.email}).status_code == 400
    assert api.post(path, {"email": 42}).status_code == 400
    assert api.delete(f"{path}/{created.get_json()['id']}").status_code == 204
    assert api.get(path).get_json() == {"moderators": []}
    actions = api.get(f"/streams/{live.public_id}/chat/actions").get_json()["actions"]
    assert [a["action"] for a in actions] == ["remove_moderator", "appoint"]
    assert {a["moderator"] for a in actions} == {live.owner.email}


# --- who may call what --------------------------------------------------------

MODERATION = "moderation"
OWNER_ONLY = "owner only"


def _calls(stream, message, participant):
    base = f"/streams/{stream.public_id}/chat"
    return [
        ("DELETE", f"{base}/{message}", None, MODERATION, 204),
        ("GET", f"{base}/settings", None, MODERATION, 200),
        ("PATCH", f"{base}/settings", {"slow_mode": 5}, MODERATION, 200),
        ("GET", f"{base}/bans", None, MODERATION, 200),
        ("POST", f"{base}/timeouts", {"participant": participant, "minutes": 1}, MODERATION, 201),
        ("POST", f"{base}/bans", {"participant": participant}, MODERATION, 201),
        ("DELETE", f"{base}/bans/{participant}", None, MODERATION, 204),
        ("GET", f"{base}/moderators", None, OWNER_ONLY, 200),
        ("POST", f"{base}/moderators", {"email": "x@example.com"}, OWNER_ONLY, 201),
        ("GET", f"{base}/actions", None, OWNER_ONLY, 200),
    ]


@pytest.mark.parametrize("role", ["no token", "another creator", "moderator", "owner"])
def test_who_may_call_each_chat_endpoint(role, app, client, db, live, make_user, make_token):
    """No token: 401; another creator: 404 (as for their streams); an
    appointed moderator: moderation yes, owner-only endpoints 403; the
    owner: everything. A refused call changes nothing."""
    make_user("x@example.com")
    moderator = make_user()
    moderation.appoint_moderator(db.session, live, live.owner, moderator.email)
    db.session.commit()
    message = say(app, db, live, "to be moderated")
    user = {"another creator": make_user(), "moderator": moderator, "owner": live.owner}.get(role)
    caller = Api(client, make_token(user) if user else None)
    before = count(db, ChatModerationAction)
    for method, path, body, kind, success in _calls(live, message.id, message.participant):
        reply = caller.call(method, path, body)
        if role == "no token":
            expected = 401
        elif role == "another creator":
            expected = 404
        elif role == "moderator" and kind == OWNER_ONLY:
            expected = 403
        else:
            expected = success
        assert reply.status_code == expected, (method, path, reply.get_data(as_text=True))
        if expected >= 400:
            assert set(reply.get_json()) == {"error", "fields"}
    logged = count(db, ChatModerationAction) - before
    assert logged == {"no token": 0, "another creator": 0, "moderator": 5, "owner": 6}[role]
    db.session.rollback()
    assert (db.session.get(ChatMessage, message.id).deleted_at is not None) is (
        role in ("moderator", "owner")
    )
