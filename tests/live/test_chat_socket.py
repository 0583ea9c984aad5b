"""Chat over the stream socket against the real socket tier (gunicorn gevent),
PostgreSQL and Redis pub/sub: writing, reading, limits, refusals."""

from __future__ import annotations

import contextlib
import json
import socket as tcp

import pytest
from simple_websocket import ConnectionClosed
from sqlalchemy import func, select

from studio import fanout
from studio.live import views as live_views
from studio.live.hub import get_hub
from studio.models import ChatMessage
from tests.live.chat_client import Chatter, live_stream, signed_in, ws_url
from tests.live.conftest import Client, run_gunicorn
from tests.live.test_websocket import publish
from tests.polling import wait_until


@pytest.fixture()
def chatters(redis):
    """Opens chat sockets and closes them after the test; Redis (the rate
    limits) starts empty."""
    opened: list[Chatter] = []

    def connect(url: str, headers: dict | None = None, name: str = "Viewer") -> Chatter:
        chatter = Chatter(url, headers, name)
        opened.append(chatter)
        return chatter

    yield connect
    for chatter in opened:
        with contextlib.suppress(ConnectionClosed):
            chatter.close()


def stored(db) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(ChatMessage))


def test_two_viewers_see_each_others_messages(live_server, client, make_stream, chatters, db):
    """What one viewer writes reaches the other at once, and the history a
    newcomer gets on connect holds both, oldest first, with their broadcast."""
    stream = live_stream(client, make_stream)
    url = ws_url(live_server, stream.public_id)
    ann, bob = chatters(url, name="Ann"), chatters(url, name="Bob")
    assert ann.hello["messages"] == []
    assert ann.hello["settings"] == {"mode": "everyone", "slow_mode": 0}
    assert ann.hello["you"] == {"moderator": False, "signed_in": False, "name": None}

    ann.say("Hello 👋🏽 from Ann")
    seen = bob.message("Hello 👋🏽 from Ann")
    assert seen["name"] == "Ann"
    assert seen["signed_in"] is False
    assert seen["participant"] != ann.anon and ann.anon not in json.dumps(seen)
    assert seen["broadcast"] is not None and seen["offset"] >= 0
    assert seen["sent_at"].endswith("+00:00")
    bob.say("<b>hi</b> Ann")
    assert ann.message("<b>hi</b> Ann")["text"] == "<b>hi</b> Ann"  # stored raw

    newcomer = chatters(url)
    texts = [m["text"] for m in newcomer.hello["messages"]]
    assert texts == ["Hello 👋🏽 from Ann", "<b>hi</b> Ann"]
    assert stored(db) == 2


def test_a_signed_in_user_writes_under_their_name(
    live_server, client, make_user, make_stream, chatters
):
    """A signed-in user's name is theirs (the e-mail's local part until they
    set one), whatever name the frame carries."""
    stream = live_stream(client, make_stream)
    user = make_user("dana.scully@example.com")
    dana = chatters(ws_url(live_server, stream.public_id), signed_in(live_server, user))
    assert dana.hello["you"] == {"moderator": False, "signed_in": True, "name": "dana.scully"}
    dana.say("The truth is out there", name="Someone else")
    message = dana.message("The truth is out there")
    assert message["name"] == "dana.scully"
    assert message["signed_in"] is True
    assert message["participant"].startswith("u")


def test_chat_is_closed_while_the_stream_is_not_live(live_server, make_stream, chatters, db):
    stream = make_stream()
    viewer = chatters(ws_url(live_server, stream.public_id))
    viewer.say("anyone here?")
    refused = viewer.error()
    assert refused["code"] == "chat_off"
    assert "live" in refused["message"]
    assert stored(db) == 0


def test_chat_stays_open_while_the_publisher_reconnects(
    live_server, client, make_stream, chatters, db
):
    """A dropped encoder within the reconnect window is the same broadcast:
    its viewers keep chatting while they wait; once it has ended, chat closes."""
    stream = make_stream(reconnect_window=60)
    viewer = chatters(ws_url(live_server, stream.public_id))
    publish(client, stream)
    publish(client, stream, call="publish_done")
    db.session.expire_all()
    assert db.session.get(type(stream), stream.id).status == "reconnecting"
    viewer.say("is it down?")
    assert viewer.message("is it down?")["text"] == "is it down?"
    stream.reconnect_window = 0
    db.session.commit()
    publish(client, stream, clientid="42")
    publish(client, stream, call="publish_done", clientid="42")
    viewer.say("gone?")
    assert viewer.error()["code"] == "chat_off"
    assert stored(db) == 1


def test_a_new_broadcast_starts_a_new_conversation(live_server, client, make_stream, chatters):
    """Joining a live broadcast gives its own conversation, not the last
    broadcast's; between broadcasts a page shows the last one's."""
    stream = make_stream(reconnect_window=0)
    url = ws_url(live_server, stream.public_id)
    publish(client, stream)
    chatters(url).said("first show")
    publish(client, stream, call="publish_done")
    between = chatters(url).hello["messages"]
    assert [m["text"] for m in between] == ["first show"]
    publish(client, stream, clientid="42")
    viewer = chatters(url)
    assert viewer.hello["messages"] == []
    viewer.said("second show")
    assert [m["text"] for m in chatters(url).hello["messages"]] == ["second show"]


def test_bad_frames_get_an_error_and_change_nothing(live_server, client, make_stream, chatters, db):
    """Over-long text, NUL, invalid UTF-8, non-JSON, unknown types, wrong
    shapes and big frames are each refused with a chat.error; nothing is
    stored; the socket stays usable."""
    stream = live_stream(client, make_stream)
    url = ws_url(live_server, stream.public_id)
    viewer = chatters(url)
    good = {"name": viewer.name, "anon": viewer.anon}
    frames = [
        (json.dumps({"type": "chat.send", "text": "😀" * 501, **good}), "too_long"),
        (json.dumps({"type": "chat.send", "text": "a\u0000b", **good}), "invalid"),
        (json.dumps({"type": "chat.send", "text": "a\x07b", **good}), "invalid"),
        (json.dumps({"type": "chat.send", "text": "   ", **good}), "invalid"),
        (json.dumps({"type": "chat.send", "text": 42, **good}), "invalid"),
        (json.dumps({"type": "chat.send", "text": "hi", "name": "x", "anon": "short"}), "invalid"),
        (json.dumps({"type": "chat.send", "text": "hi", "anon": viewer.anon}), "invalid"),
        (
            json.dumps({"type": "chat.send", "text": "hi", "name": "n" * 41, "anon": viewer.anon}),
            "invalid",
        ),
        ('{"type": "chat.send", "text": "\\ud800", "name": "x"}', "invalid"),
        (b"\xff\xfe{not utf-8", "invalid"),
        ("this is not json", "invalid"),
        ("[1, 2, 3]", "invalid"),
        (json.dumps({"type": "chat.dance"}), "invalid"),
        (json.dumps({"type": None}), "invalid"),
        (json.dumps({"type": "chat.send", "text": "x" * 9000, **good}), "too_long"),
    ]
    for index, (frame, code) in enumerate(frames):
        if index and index % 8 == 0:  # within the socket's own burst budget
            viewer = chatters(url)
        viewer.ws.send(frame)
        refused = viewer.error()
        assert refused["code"] == code, (frame[:80], refused)
        assert refused["message"] and refused["message"].endswith((".", "!"))
    assert stored(db) == 0

    emoji = "👩‍🚀" * 125  # 500 code points: the most a message may hold
    viewer.say(emoji)
    assert viewer.message(emoji)["text"] == emoji
    assert stored(db) == 1


def test_a_huge_frame_closes_the_socket(live_server, client, make_stream, chatters, db):
    """A frame far beyond any message (100 KB) is not buffered: 1009."""
    stream = live_stream(client, make_stream)
    viewer = chatters(ws_url(live_server, stream.public_id))
    viewer.ws.send(json.dumps({"type": "chat.send", "text": "x" * 100_000}))
    with pytest.raises(ConnectionClosed):
        viewer.next(lambda e: False, timeout=10)
    assert viewer.ws.close_reason == 1009
    assert stored(db) == 0


def test_rate_limits_per_participant_and_per_address(
    live_server, client, make_stream, chatters, db
):
    """Five messages per participant per 10 s, twenty attempts per address:
    the next is refused with a retry_after, and not stored."""
    stream = live_stream(client, make_stream)
    url = ws_url(live_server, stream.public_id)
    first = chatters(url)
    for n in range(5):
        first.said(f"message {n}")
    first.say("one too many")
    refused = first.error()
    assert refused["code"] == "rate_limited"
    assert 1 <= refused["retry_after"] <= 10

    # Six attempts so far from this address (refused ones count too): 14 more.
    for index, count in enumerate((5, 5, 4)):
        other = chatters(url)
        for n in range(count):
            other.said(f"{index}/{n}")
    last = chatters(url)
    last.say("a fresh participant, the same address")
    assert last.error()["code"] == "rate_limited"
    assert stored(db) == 19


def test_a_flooding_socket_is_told_then_closed(live_server, client, make_stream, chatters, db):
    """Frames beyond the socket's own budget are answered with one
    rate_limited a second and then the socket is closed (1008); other
    viewers keep chatting."""
    stream = live_stream(client, make_stream)
    url = ws_url(live_server, stream.public_id)
    flooder, other = chatters(url), chatters(url)
    for _ in range(15):
        flooder.frame(type="chat.dance")
    assert flooder.next(lambda e: e.get("code") == "rate_limited")["retry_after"] == 1
    for _ in range(200):
        flooder.frame(type="chat.dance")
    with pytest.raises(ConnectionClosed):
        flooder.next(lambda e: False, timeout=20)
    assert flooder.ws.close_reason == 1008
    assert other.said("still here")["text"] == "still here"


def test_joins_over_the_address_limit_are_closed(app, services, make_stream, db, redis):
    """Past STUDIO_CHAT_JOIN_RATE_ADDRESS sockets a minute from one address,
    the next is closed with 1013 before any work is done."""
    stream = make_stream()
    env = {"STUDIO_CHAT_JOIN_RATE_ADDRESS": "3 per minute"}
    with run_gunicorn(app, services, env) as (url, _process):
        opened = [Chatter(ws_url(url, stream.public_id)) for _ in range(3)]
        refused = Client.connect(ws_url(url, stream.public_id))
        with pytest.raises(ConnectionClosed):
            refused.receive(timeout=10)
        assert refused.close_reason == 1013
        for chatter in opened:
            chatter.close()


def test_a_socket_that_stops_reading_is_dropped(threaded_server, app, make_stream, monkeypatch):
    """A client that takes nothing from its socket while chat flows is
    dropped once a send cannot proceed for SEND_TIMEOUT (here 2 s), long
    before the ping timeout (25 s), instead of being buffered for."""
    monkeypatch.setattr(live_views, "SEND_TIMEOUT", 2.0)
    stream = make_stream()
    hub = get_hub(app)
    host, port = threaded_server.removeprefix("http://").split(":")
    stalled = tcp.socket(tcp.AF_INET, tcp.SOCK_STREAM)
    stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 4096)
    stalled.connect((host, int(port)))
    try:
        stalled.sendall(
            (
                f"GET /ws/streams/{stream.public_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert stalled.recv(256).startswith(b"HTTP/1.1 101")
        wait_until(lambda: hub.watcher_count() == 1, 5, "the socket to watch")
        big = {"type": "chat.message", "message": {"id": 1, "text": "x" * 4000}}
        for _ in range(300):  # about 1.2 MB, far beyond both kernel buffers
            fanout.publish(app, stream.public_id, big)
        wait_until(lambda: hub.watcher_count() == 0, 15, "the stalled socket to be dropped")
    finally:
        stalled.close()


def test_stream_sockets_are_not_compressed(live_server, make_stream, db):
    """A browser's offer of permessage-deflate is declined (a compressor per
    socket would cost memory and CPU for every message to every socket);
    the frames that follow are plain text frames."""
    stream = make_stream()
    host, port = live_server.removeprefix("http://").split(":")
    raw = tcp.create_connection((host, int(port)), timeout=10)
    try:
        raw.sendall(
            (
                f"GET /ws/streams/{stream.public_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += raw.recv(4096)
        head, _, rest = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert b"sec-websocket-extensions" not in head.lower()
        while len(rest) < 2:
            rest += raw.recv(4096)
        assert rest[0] == 0x81  # final text frame, no compression bit (0x40)
    finally:
        raw.close()
