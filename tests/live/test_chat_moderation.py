"""Chat moderation over the stream socket (real socket tier, PostgreSQL,
Redis): deleting, bans, timeouts, slow mode, chat modes, the blocklist, and
who may do each."""

from __future__ import annotations

import contextlib

import pytest
from simple_websocket import ConnectionClosed
from sqlalchemy import select

from studio.chat import moderation
from studio.models import ChatMessage, ChatModerationAction, Stream
from tests.live.chat_client import Chatter, live_stream, signed_in, ws_url


@pytest.fixture()
def chatters(redis):
    opened: list[Chatter] = []

    def connect(url: str, headers: dict | None = None, name: str = "Viewer") -> Chatter:
        chatter = Chatter(url, headers, name)
        opened.append(chatter)
        return chatter

    yield connect
    for chatter in opened:
        with contextlib.suppress(ConnectionClosed):
            chatter.close()


@pytest.fixture()
def room(live_server, client, make_user, make_stream, chatters, db):
    """A live stream, its owner's socket and a viewer's socket."""
    owner = make_user()
    stream = live_stream(client, make_stream, owner)
    url = ws_url(live_server, stream.public_id)
    return {
        "stream": stream,
        "url": url,
        "owner": owner,
        "owner_socket": chatters(url, signed_in(live_server, owner)),
        "viewer": chatters(url, name="Viewer"),
    }


def appoint(db, stream, owner, email):
    moderation.appoint_moderator(db.session, stream, owner, email)
    db.session.commit()


def test_a_deleted_message_disappears_for_everyone(room, chatters, db):
    viewer, owner_socket = room["viewer"], room["owner_socket"]
    other = chatters(room["url"])
    message = viewer.said("something regrettable")
    owner_socket.frame(type="chat.delete", id=message["id"])
    assert other.next(lambda e: e["type"] == "chat.deleted")["id"] == message["id"]
    assert viewer.next(lambda e: e["type"] == "chat.deleted")["id"] == message["id"]
    assert chatters(room["url"]).hello["messages"] == []
    db.session.rollback()
    action = db.session.scalar(select(ChatModerationAction))
    assert (action.action, action.moderator_id, action.message_id) == (
        "delete",
        room["owner"].id,
        message["id"],
    )
    assert action.created_at is not None
    owner_socket.frame(type="chat.delete", id=message["id"])
    assert owner_socket.error()["code"] == "not_found"


def test_a_banned_participant_cannot_write_and_is_told_why(room, chatters, make_user, live_server):
    """A ban holds the anonymous id and the address it wrote from (a new
    anonymous id does not escape it), not a signed-in account at that
    address; unban lets them back."""
    viewer, owner_socket = room["viewer"], room["owner_socket"]
    participant = viewer.said("spam spam spam")["participant"]
    owner_socket.frame(type="chat.ban", participant=participant)
    event = owner_socket.next(lambda e: e["type"] == "chat.moderation")
    assert event == {**event, "action": "ban", "participant": participant, "until": None}
    assert all(e["type"] != "chat.moderation" for e in viewer.drain())

    viewer.say("let me in")
    refused = viewer.error()
    assert refused["code"] == "banned"
    assert refused["message"] == "You are banned from this chat."
    fresh = chatters(room["url"])  # another anonymous id, the same address
    fresh.say("it's me again")
    assert fresh.error()["code"] == "banned"
    member = chatters(room["url"], signed_in(live_server, make_user()))
    assert member.said("I am someone else")["signed_in"] is True

    owner_socket.frame(type="chat.unban", participant=participant)
    owner_socket.next(lambda e: e["type"] == "chat.moderation" and e["action"] == "unban")
    assert viewer.said("thank you")["participant"] == participant


def test_a_timed_out_participant_waits(room):
    viewer, owner_socket = room["viewer"], room["owner_socket"]
    participant = viewer.said("hot take")["participant"]
    owner_socket.frame(type="chat.timeout", participant=participant, minutes=2)
    event = owner_socket.next(lambda e: e["type"] == "chat.moderation")
    assert event["action"] == "timeout" and event["until"]
    viewer.say("another hot take")
    refused = viewer.error()
    assert refused["code"] == "timed_out"
    assert 60 < refused["retry_after"] <= 120


def test_moderators_cannot_be_banned(room, make_user, chatters, live_server, db):
    helper = make_user()
    appoint(db, room["stream"], room["owner"], helper.email)
    helper_socket = chatters(room["url"], signed_in(live_server, helper))
    assert helper_socket.hello["you"]["moderator"] is True
    owner_participant = room["owner_socket"].said("owner here")["participant"]
    helper_socket.frame(type="chat.ban", participant=owner_participant)
    assert helper_socket.error()["code"] == "forbidden"


def test_slow_mode_holds_for_viewers_not_for_moderators(room):
    viewer, owner_socket = room["viewer"], room["owner_socket"]
    owner_socket.frame(type="chat.settings", slow_mode=30)
    update = viewer.next(lambda e: e["type"] == "chat.settings")
    assert update["settings"] == {"mode": "everyone", "slow_mode": 30}
    viewer.said("first")
    viewer.say("second")
    refused = viewer.error()
    assert refused["code"] == "slow_mode"
    assert 1 <= refused["retry_after"] <= 30
    owner_socket.said("owner one")
    owner_socket.said("owner two")


def test_chat_off_and_signed_in_only_hold(room, chatters, make_user, live_server):
    viewer, owner_socket = room["viewer"], room["owner_socket"]
    owner_socket.frame(type="chat.settings", mode="off")
    viewer.next(lambda e: e["type"] == "chat.settings")
    viewer.say("hello?")
    assert viewer.error()["code"] == "chat_off"

    owner_socket.frame(type="chat.settings", mode="signed_in")
    assert viewer.next(lambda e: e["type"] == "chat.settings")["settings"]["mode"] == "signed_in"
    viewer.say("hello?")
    refused = viewer.error()
    assert refused["code"] == "signed_in_only"
    assert "Sign in" in refused["message"]
    member = chatters(room["url"], signed_in(live_server, make_user()))
    assert member.hello["settings"]["mode"] == "signed_in"
    member.said("members only")


def test_the_blocklist_refuses_whole_words_and_only_moderators_see_it(room, chatters):
    viewer, owner_socket = room["viewer"], room["owner_socket"]
    owner_socket.frame(type="chat.settings", blocklist=["darn", "Bad Word"])
    mine = owner_socket.next(lambda e: e["type"] == "chat.settings")
    assert mine["settings"]["blocklist"] == ["darn", "Bad Word"]
    theirs = viewer.next(lambda e: e["type"] == "chat.settings")
    assert "blocklist" not in theirs["settings"] and "blocklist" not in theirs
    assert "blocklist" not in chatters(room["url"]).hello["settings"]

    for text in ("Darn it!", "what a ＢＡＤ  word".replace("  ", " "), "darn"):
        viewer.say(text)
        refused = viewer.error()
        assert refused["code"] == "blocked_word", text
    assert viewer.said("darning socks")["text"] == "darning socks"


def test_a_socket_from_another_site_is_not_the_owner(room, chatters, live_server):
    """The owner's cookie on a socket opened by another site's page gives
    no moderation (nor their name)."""
    headers = {**signed_in(live_server, room["owner"]), "Origin": "https://evil.example"}
    borrowed = chatters(room["url"], headers)
    assert borrowed.hello["you"] == {"moderator": False, "signed_in": False, "name": None}
    borrowed.frame(type="chat.settings", mode="off")
    assert borrowed.error()["code"] == "forbidden"


@pytest.mark.parametrize("role", ["anonymous", "another creator", "moderator", "owner"])
def test_who_may_moderate_over_the_socket(role, room, chatters, make_user, live_server, db):
    """Every moderation frame: refused (forbidden, nothing changed) for an
    anonymous viewer and for another creator; done and recorded for an
    appointed moderator and for the owner."""
    stream, url = room["stream"], room["url"]
    if role == "owner":
        actor, actor_socket = room["owner"], room["owner_socket"]
    else:
        actor = None if role == "anonymous" else make_user()
        if role == "moderator":
            appoint(db, stream, room["owner"], actor.email)
        actor_socket = chatters(url, signed_in(live_server, actor) if actor else None)
    allowed = role in ("moderator", "owner")
    assert actor_socket.hello["you"]["moderator"] is allowed
    victim = room["viewer"]
    message = victim.said("a message to moderate")
    participant = message["participant"]

    frames = [
        ({"type": "chat.delete", "id": message["id"]}, "chat.deleted"),
        ({"type": "chat.timeout", "participant": participant, "minutes": 5}, "chat.moderation"),
        ({"type": "chat.ban", "participant": participant}, "chat.moderation"),
        ({"type": "chat.unban", "participant": participant}, "chat.moderation"),
        ({"type": "chat.settings", "slow_mode": 7, "blocklist": ["x"]}, "chat.settings"),
    ]
    for frame, effect in frames:
        actor_socket.frame(**frame)
        if allowed:
            actor_socket.next(lambda e, effect=effect: e["type"] == effect)
        else:
            refused = actor_socket.error()
            assert refused["code"] == "forbidden", frame
            assert refused["message"] == "Only the stream's moderators can do that."

    db.session.rollback()
    logged = db.session.scalars(
        select(ChatModerationAction).where(ChatModerationAction.action != "appoint")
    ).all()
    row = db.session.get(ChatMessage, message["id"])
    settings = db.session.get(Stream, stream.id)
    if allowed:
        assert [a.action for a in logged] == ["delete", "timeout", "ban", "unban", "settings"]
        assert {a.moderator_id for a in logged} == {actor.id}
        assert row.deleted_at is not None
        assert (settings.chat_slow_mode, settings.chat_blocklist) == (7, ["x"])
    else:
        assert logged == []
        assert row.deleted_at is None
        assert (settings.chat_slow_mode, settings.chat_blocklist) == (0, [])


def test_a_moderator_may_send_the_longest_blocklist(room):
    """200 words of 40 characters: beyond a viewer's 8 KiB frame, within a
    moderator's."""
    words = [f"{n:03d}" + "w" * 37 for n in range(200)]
    room["owner_socket"].frame(type="chat.settings", blocklist=words)
    update = room["owner_socket"].next(lambda e: e["type"] == "chat.settings")
    assert update["settings"]["blocklist"] == words
