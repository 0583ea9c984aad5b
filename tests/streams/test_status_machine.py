"""The publish status machine, driven through the service like every surface does."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select

from studio.models import Broadcast
from studio.streams import service
from studio.streams.service import PublishAttempt, PublishRefused


@pytest.fixture()
def stream(make_stream):
    return make_stream()


def attempt(stream, client_id="c1", secret=None, **extra) -> PublishAttempt:
    fields = dict(
        stream_name=stream.public_id,
        secret=stream.stream_key if secret is None else secret,
        client_id=client_id,
        protocol="rtmp",
        server_id="vid-1",
        service_id="svc-1",
    )
    fields.update(extra)
    return PublishAttempt(**fields)


def publish(db, stream, client_id="c1", **extra):
    broadcast = service.start_broadcast(db.session, attempt(stream, client_id, **extra))
    db.session.commit()
    return broadcast


def unpublish(db, stream, client_id="c1", server_id="vid-1"):
    ended = service.end_broadcast(db.session, stream.public_id, client_id, server_id)
    db.session.commit()
    return ended


def broadcasts(db, stream):
    return db.session.scalars(
        select(Broadcast).where(Broadcast.stream_id == stream.id).order_by(Broadcast.id)
    ).all()


def test_publish_and_unpublish_write_their_rows_in_one_statement_each(db, stream):
    """A publish writes the new broadcast and the stream's status in one
    statement, an unpublish the ended broadcast and the stream's status in
    one; what the session holds afterwards is what the database holds
    (the stream's last-changed time included)."""
    writes: list[str] = []
    created_at = stream.updated_at

    def record(conn, cursor, statement, *args):
        if not statement.lstrip().startswith("SELECT"):
            writes.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        broadcast = service.start_broadcast(db.session, attempt(stream))
        assert (len(writes), stream.status) == (1, "live")
        assert broadcast.id is not None and broadcast.ended_at is None
        db.session.commit()
        writes.clear()
        ended = service.end_broadcast(db.session, stream.public_id, "c1", "vid-1")
        assert (len(writes), stream.status) == (1, "ended")
        assert ended is broadcast and ended.end_reason == "unpublish"
        ended_at, changed_at = ended.ended_at, stream.updated_at  # as the session holds them
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    [row] = broadcasts(db, stream)
    assert (row.ended_at, row.end_reason, row.client_id) == (ended_at, "unpublish", "c1")
    assert (stream.status, stream.updated_at) == ("ended", changed_at)
    assert changed_at > created_at


def test_new_stream_is_created(stream):
    """A new stream starts in status `created`, enabled."""
    assert stream.status == "created"
    assert stream.disabled is False


def test_duplicate_publish_is_idempotent(db, stream):
    """A repeated on_publish of the same publisher keeps one broadcast."""
    first = publish(db, stream)
    second = publish(db, stream)
    assert first.id == second.id
    assert len(broadcasts(db, stream)) == 1
    assert stream.status == "live"


def test_duplicate_unpublish_changes_nothing(db, stream):
    """A second on_unpublish of the same publisher is a no-op."""
    publish(db, stream)
    assert unpublish(db, stream) is not None
    ended_at = broadcasts(db, stream)[0].ended_at
    assert unpublish(db, stream) is None
    assert broadcasts(db, stream)[0].ended_at == ended_at
    assert stream.status == "ended"


def test_unknown_client_unpublish_changes_nothing(db, stream):
    """An on_unpublish for a client id we never accepted leaves the live broadcast alone."""
    publish(db, stream)
    assert unpublish(db, stream, client_id="stranger") is None
    assert stream.status == "live"
    assert broadcasts(db, stream)[0].ended_at is None


def test_late_unpublish_does_not_end_newer_broadcast(db, stream):
    """publish A, unpublish A, publish B, then A's unpublish again: B stays live."""
    publish(db, stream, "A")
    unpublish(db, stream, "A")
    publish(db, stream, "B")
    assert unpublish(db, stream, "A") is None
    db.session.refresh(stream)
    assert stream.status == "live"
    newest = broadcasts(db, stream)[-1]
    assert newest.client_id == "B" and newest.ended_at is None


def test_republish_after_end_starts_new_broadcast(db, stream):
    """Publishing again after `ended` goes live with a new broadcast."""
    publish(db, stream, "A")
    unpublish(db, stream, "A")
    assert stream.status == "ended"
    publish(db, stream, "B")
    assert stream.status == "live"
    assert [b.client_id for b in broadcasts(db, stream)] == ["A", "B"]


def test_publisher_that_already_left_is_refused(db, stream):
    """An on_publish replayed after that publisher's unpublish is refused."""
    publish(db, stream, "A")
    unpublish(db, stream, "A")
    with pytest.raises(PublishRefused, match="already ended"):
        publish(db, stream, "A")
    assert stream.status == "ended"


def test_client_ids_reused_without_service_id_are_new_publishers(db, stream):
    """nginx-rtmp restarts reuse client ids and send no service id: a new publish."""
    publish(db, stream, "1", service_id="")
    unpublish(db, stream, "1")
    publish(db, stream, "1", service_id="")
    assert len(broadcasts(db, stream)) == 2


def test_rotated_key_is_refused(db, stream):
    """After rotation the old key is refused on publish."""
    old_key = stream.stream_key
    service.rotate_key(db.session, stream)
    db.session.commit()
    with pytest.raises(PublishRefused, match="wrong key"):
        publish(db, stream, secret=old_key)
    assert stream.status == "created"
    publish(db, stream)  # the new key works
    assert stream.status == "live"


def test_disabled_stream_is_refused(db, stream):
    """A disabled stream refuses publish even with the right key."""
    service.set_disabled(db.session, stream, True)
    db.session.commit()
    with pytest.raises(PublishRefused, match="disabled"):
        publish(db, stream)
    assert broadcasts(db, stream) == []


def test_second_publisher_while_live_is_refused(db, stream):
    """While one publisher is live another one is refused, and the first stays live."""
    publish(db, stream, "A")
    with pytest.raises(PublishRefused, match="already live"):
        publish(db, stream, "B")
    assert [b.client_id for b in broadcasts(db, stream)] == ["A"]
    assert stream.status == "live"


def test_wrong_key_and_empty_key_are_refused(db, stream):
    """Keys are compared exactly: an empty or near-miss key is refused."""
    for secret in ("", stream.stream_key[:-1], stream.stream_key + "x"):
        with pytest.raises(PublishRefused, match="wrong key"):
            publish(db, stream, secret=secret)
    assert stream.status == "created"


def test_status_changes_are_published_on_redis(db, redis, stream):
    """Each status change is published on the stream's Redis channel after commit."""
    pubsub = redis.pubsub()
    pubsub.subscribe(f"studio:stream:{stream.public_id}")
    pubsub.get_message(timeout=1)  # subscription confirmation
    publish(db, stream)
    unpublish(db, stream)
    statuses = []
    for _ in range(2):
        message = pubsub.get_message(timeout=2)
        assert message is not None, "no event published"
        statuses.append(json.loads(message["data"])["status"])
    assert statuses == ["live", "ended"]
    event_text = json.dumps(statuses)
    assert stream.stream_key not in event_text


def test_refused_publish_publishes_nothing(db, redis, stream):
    """A refused publish changes nothing and sends no event."""
    pubsub = redis.pubsub()
    pubsub.subscribe(f"studio:stream:{stream.public_id}")
    pubsub.get_message(timeout=1)
    with pytest.raises(PublishRefused):
        service.start_broadcast(db.session, attempt(stream, secret="nope"))
    db.session.rollback()
    assert pubsub.get_message(timeout=0.5) is None
