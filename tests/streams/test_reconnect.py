"""The reconnect window in the status machine: a publisher that comes back in
time continues the same broadcast; after the deadline, a key rotation or
disabling, the broadcast ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from studio.core import events
from studio.errors import ValidationError
from studio.models import Broadcast, Stream, utcnow
from studio.streams import reconnect, service
from tests.streams.test_status_machine import attempt, broadcasts, publish, unpublish


@pytest.fixture()
def heard():
    """The stream and broadcast events handed to subscribers after commits."""
    received: list = []
    kinds = (
        events.StreamChanged,
        events.StreamReconnecting,
        events.BroadcastResumed,
        events.BroadcastStarted,
        events.BroadcastEnded,
        events.PublisherRevoked,
    )
    for kind in kinds:
        events.subscribe(kind, received.append)
    yield received
    for kind in kinds:
        events.unsubscribe(kind, received.append)


@pytest.fixture()
def stream(make_stream):
    return make_stream(reconnect_window=60)


def fresh(db, stream) -> Stream:
    db.session.expire_all()
    return db.session.get(Stream, stream.id)


def test_unpublish_within_a_window_waits_for_the_publisher(db, stream, heard):
    """An unpublish of a live stream with a window makes it `reconnecting`
    with a deadline; its broadcast stays open and StreamReconnecting is raised."""
    first = publish(db, stream)
    heard.clear()
    before = utcnow()
    unpublish(db, stream)
    row = fresh(db, stream)
    assert row.status == "reconnecting"
    assert before + timedelta(seconds=59) <= row.reconnect_deadline
    assert row.reconnect_deadline <= utcnow() + timedelta(seconds=60)
    assert [b.ended_at for b in broadcasts(db, stream)] == [None]
    waiting = [e for e in heard if isinstance(e, events.StreamReconnecting)]
    assert waiting == [
        events.StreamReconnecting(stream.public_id, first.id, row.reconnect_deadline, 60)
    ]
    changed = [e for e in heard if isinstance(e, events.StreamChanged)]
    assert [(e.status, e.reconnect_deadline) for e in changed] == [
        ("reconnecting", row.reconnect_deadline)
    ]
    assert not [e for e in heard if isinstance(e, events.BroadcastEnded)]


def test_a_publisher_back_in_time_continues_the_same_broadcast(db, stream, heard):
    """A new publisher (new client id) with the key, before the deadline:
    the same broadcast, now addressed by its client id; no BroadcastStarted."""
    first = publish(db, stream, client_id="c1")
    unpublish(db, stream, client_id="c1")
    heard.clear()
    again = publish(db, stream, client_id="c2", protocol="webrtc")
    assert again.id == first.id
    row = fresh(db, stream)
    assert (row.status, row.reconnect_deadline) == ("live", None)
    only = broadcasts(db, stream)
    assert [(b.client_id, b.protocol, b.ended_at) for b in only] == [("c2", "webrtc", None)]
    assert events.BroadcastResumed(stream.public_id, first.id, "webrtc") in heard
    assert not [e for e in heard if isinstance(e, events.BroadcastStarted)]
    # The old publisher's late unpublish changes nothing; the new one's counts.
    assert unpublish(db, stream, client_id="c1") is None
    assert fresh(db, stream).status == "live"
    unpublish(db, stream, client_id="c2")
    assert fresh(db, stream).status == "reconnecting"


def test_a_repeated_unpublish_keeps_the_deadline(db, stream):
    """A duplicate unpublish while reconnecting changes nothing."""
    publish(db, stream)
    unpublish(db, stream)
    deadline = fresh(db, stream).reconnect_deadline
    assert unpublish(db, stream) is None
    assert fresh(db, stream).reconnect_deadline == deadline


def test_a_publish_after_the_deadline_starts_a_new_broadcast(db, stream, heard):
    """The deadline passed before any pass of the reconciler: the waiting
    broadcast ends (reconnect_timeout) and a new one starts."""
    first = publish(db, stream)
    unpublish(db, stream)
    fresh(db, stream).reconnect_deadline = utcnow() - timedelta(seconds=1)
    db.session.commit()
    heard.clear()
    second = publish(db, stream, client_id="c2")
    assert second.id != first.id
    rows = broadcasts(db, stream)
    assert [(b.id, b.end_reason) for b in rows] == [
        (first.id, "reconnect_timeout"),
        (second.id, None),
    ]
    assert fresh(db, stream).status == "live"
    assert events.BroadcastEnded(stream.public_id, first.id, "reconnect_timeout") in heard
    assert events.BroadcastStarted(stream.public_id, second.id, "rtmp") in heard


def test_expire_reconnects_ends_only_what_is_due(db, make_stream):
    """`expire_reconnects` ends the broadcasts whose deadline passed, and
    leaves a later deadline waiting."""
    due, later = make_stream(reconnect_window=10), make_stream(reconnect_window=600)
    for each in (due, later):
        publish(db, each)
        unpublish(db, each)
    ended = reconnect.expire_reconnects(db.session, utcnow() + timedelta(seconds=30))
    db.session.commit()
    assert ended == [due.public_id]
    assert fresh(db, due).status == "ended"
    assert broadcasts(db, due)[0].end_reason == "reconnect_timeout"
    assert fresh(db, later).status == "reconnecting"


def test_window_zero_ends_at_once(db, make_stream):
    """Window 0: today's behaviour, the unpublish ends the broadcast."""
    stream = make_stream(reconnect_window=0)
    publish(db, stream)
    unpublish(db, stream)
    assert fresh(db, stream).status == "ended"
    assert broadcasts(db, stream)[0].end_reason == "unpublish"


def test_rotating_the_key_while_reconnecting_ends_the_broadcast(db, stream, heard):
    """A key rotation in the window ends the broadcast at once; the old key is
    refused and a publisher with the new key starts a new broadcast."""
    first = publish(db, stream)
    unpublish(db, stream)
    old_key = stream.stream_key
    heard.clear()
    service.rotate_key(db.session, fresh(db, stream))
    db.session.commit()
    assert fresh(db, stream).status == "ended"
    assert broadcasts(db, stream)[0].end_reason == "key_rotated"
    assert not [e for e in heard if isinstance(e, events.PublisherRevoked)]  # nobody to drop
    with pytest.raises(service.PublishRefused, match="wrong key"):
        service.start_broadcast(db.session, attempt(stream, "c2", secret=old_key))
    db.session.rollback()
    second = publish(db, fresh(db, stream), client_id="c3")
    assert second.id != first.id


def test_rotating_the_key_while_live_ends_the_broadcast_and_drops_the_publisher(db, stream, heard):
    """Live with a window: a rotation ends the broadcast now (its unpublish,
    arriving after the drop, changes nothing): no reconnect with another key."""
    first = publish(db, stream)
    heard.clear()
    service.rotate_key(db.session, stream)
    db.session.commit()
    assert events.PublisherRevoked(stream.public_id, "c1", "vid-1") in heard
    assert unpublish(db, stream) is None
    assert fresh(db, stream).status == "ended"
    assert db.session.get(Broadcast, first.id).end_reason == "key_rotated"


def test_disabling_while_reconnecting_ends_the_broadcast(db, stream):
    """Disabling in the window ends the broadcast at once."""
    publish(db, stream)
    unpublish(db, stream)
    service.set_disabled(db.session, fresh(db, stream), True)
    db.session.commit()
    row = fresh(db, stream)
    assert (row.status, row.disabled, row.reconnect_deadline) == ("ended", True, None)
    assert broadcasts(db, stream)[0].end_reason == "disabled"


def test_a_reconnecting_stream_keeps_its_place_under_the_live_limit(db, make_stream, make_user):
    """With a limit of one live stream, a creator's reconnecting stream
    blocks another of their streams from going live."""
    owner = make_user()
    waiting = make_stream(owner=owner, reconnect_window=60)
    other = make_stream(owner=owner)
    publish(db, waiting)
    unpublish(db, waiting)
    limits = service.PublishLimits(max_live_per_user=1)
    with pytest.raises(service.PublishRefused, match="limit"):
        service.start_broadcast(db.session, attempt(other, "c9"), limits)
    db.session.rollback()
    assert service.start_broadcast(db.session, attempt(fresh(db, waiting), "c2"), limits)


@pytest.mark.parametrize("value", [-1, 1801, "60", 1.5, True, None])
def test_a_bad_window_is_refused(db, make_user, value):
    """A window must be whole seconds in 0..1800."""
    with pytest.raises(ValidationError) as refused:
        service.create_stream(db.session, make_user(), "Title", value)
    assert "reconnect_window" in refused.value.fields
    db.session.rollback()
    assert db.session.scalars(select(Stream)).all() == []


def test_the_default_window_is_a_minute(db, make_user):
    """A stream created without a window gets 60 seconds."""
    created = service.create_stream(db.session, make_user(), "Title")
    assert created.reconnect_window == 60
