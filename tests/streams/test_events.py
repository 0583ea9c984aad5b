"""Domain events: raised in a unit of work, heard only once it commits."""

from __future__ import annotations

import pytest

from studio.core import events
from studio.streams import service


@pytest.fixture()
def heard():
    """Every StreamChanged and StreamDeleted handed to subscribers."""
    received: list = []
    for event_type in (events.StreamChanged, events.StreamDeleted):
        events.subscribe(event_type, received.append)
    yield received
    for event_type in (events.StreamChanged, events.StreamDeleted):
        events.unsubscribe(event_type, received.append)


def test_an_event_is_heard_after_the_commit_not_before(db, make_stream, heard):
    """Disabling a stream announces it once the change is committed."""
    stream = make_stream()
    service.set_disabled(db.session, stream, True)
    assert heard == []
    assert events.pending_events(db.session) == [
        events.StreamChanged(stream.public_id, "created", True)
    ]
    db.session.commit()
    assert heard == [events.StreamChanged(stream.public_id, "created", True)]


def test_a_rolled_back_change_announces_nothing(db, make_stream, heard):
    """Events of a unit of work that rolls back are dropped, and the next
    unit of work announces only its own."""
    stream = make_stream()
    public_id = stream.public_id
    service.set_disabled(db.session, stream, True)
    db.session.rollback()
    db.session.commit()
    assert heard == []
    stream = service.get_public_stream(db.session, public_id)
    service.delete_stream(db.session, stream)
    db.session.commit()
    assert heard == [events.StreamDeleted(public_id)]


def test_a_failing_subscriber_does_not_silence_the_others(db, make_stream):
    """One subscriber raising is logged; the committed change stands and the
    subscribers after it still hear the event."""
    later: list = []

    def broken(event):
        raise RuntimeError("listener down")

    events.subscribe(events.StreamChanged, broken)
    events.subscribe(events.StreamChanged, later.append)
    try:
        stream = make_stream()
        service.set_disabled(db.session, stream, True)
        db.session.commit()
    finally:
        events.unsubscribe(events.StreamChanged, broken)
        events.unsubscribe(events.StreamChanged, later.append)
    assert later == [events.StreamChanged(stream.public_id, "created", True)]
    assert service.get_public_stream(db.session, stream.public_id).disabled is True
