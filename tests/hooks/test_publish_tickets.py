"""The browser-ingest relay publishes with a single-use publish ticket
instead of the stream secret (which would sit on ffmpeg's command line):
both engines' on_publish accept a fresh ticket once, for its stream only."""

from __future__ import annotations

import json

from sqlalchemy import select

from studio.models import Broadcast
from studio.streams import service
from tests.conftest import load_fixture

TOKEN = "test-hook-token"


def nginx_publish(client, stream: str, ticket: str, clientid: str = "11"):
    form = {
        "call": "publish",
        "app": "live",
        "name": stream,
        "clientid": clientid,
        "addr": "127.0.0.1",
        "ticket": ticket,
        "ingest": "websocket",
    }
    return client.post(f"/hooks/nginx-rtmp?token={TOKEN}", data=form)


def srs_publish(client, stream: str, ticket: str, client_id: str = "relay1"):
    body = load_fixture("on_publish.json")
    body.update(stream=stream, client_id=client_id, param=f"?ticket={ticket}&ingest=websocket")
    return client.post(
        f"/hooks/srs?token={TOKEN}", data=json.dumps(body), content_type="application/json"
    )


def srs_accepted(reply) -> bool:
    return reply.status_code == 200 and reply.get_json()["code"] == 0


def test_nginx_rtmp_accepts_a_fresh_ticket_once(client, db, redis, make_stream):
    """A minted ticket makes the relay's publish a websocket broadcast; the
    same ticket from another publisher is refused (403), the key not needed."""
    stream = make_stream()
    ticket = service.mint_publish_ticket(redis, stream.public_id)

    first = nginx_publish(client, stream.public_id, ticket, clientid="11")
    again = nginx_publish(client, stream.public_id, ticket, clientid="11")  # repeated callback
    other = nginx_publish(client, stream.public_id, ticket, clientid="12")

    assert first.status_code == 200 and again.status_code == 200
    assert other.status_code == 403
    broadcast = db.session.scalar(select(Broadcast))
    assert (broadcast.client_id, broadcast.protocol) == ("11", "websocket")


def test_srs_accepts_a_fresh_ticket_once(client, db, redis, make_stream):
    stream = make_stream()
    ticket = service.mint_publish_ticket(redis, stream.public_id)

    assert srs_accepted(srs_publish(client, stream.public_id, ticket, "relay1"))
    assert not srs_accepted(srs_publish(client, stream.public_id, ticket, "relay2"))
    assert db.session.scalar(select(Broadcast)).protocol == "websocket"


def test_a_ticket_serves_its_own_stream_only(client, db, redis, make_stream):
    """A ticket minted for one stream opens no other stream."""
    mine, other = make_stream(), make_stream()
    ticket = service.mint_publish_ticket(redis, mine.public_id)

    assert nginx_publish(client, other.public_id, ticket).status_code == 403
    assert not srs_accepted(srs_publish(client, other.public_id, ticket))
    assert db.session.scalar(select(Broadcast)) is None


def test_unknown_or_expired_tickets_are_refused(client, db, redis, make_stream):
    stream = make_stream()
    expired = service.mint_publish_ticket(redis, stream.public_id, ttl=1)
    for key in redis.keys("studio:publish-ticket:*"):
        redis.delete(key)  # what expiry does

    assert nginx_publish(client, stream.public_id, expired).status_code == 403
    assert nginx_publish(client, stream.public_id, "made-up").status_code == 403
    assert not srs_accepted(srs_publish(client, stream.public_id, "made-up"))
    assert db.session.scalar(select(Broadcast)) is None


def test_redis_keeps_no_usable_ticket(redis, app, make_stream):
    """Only a digest of the ticket is stored."""
    stream = make_stream()
    ticket = service.mint_publish_ticket(redis, stream.public_id)
    dump = b" ".join(redis.keys("*") + [redis.get(k) or b"" for k in redis.keys("*")])
    assert ticket.encode() not in dump
