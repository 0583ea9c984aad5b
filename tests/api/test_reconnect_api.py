"""The reconnect window through the API: set on create and PATCH, and the
`reconnecting` status with its deadline in the stream object."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from studio.models import Stream
from studio.streams import service
from studio.streams.service import PublishAttempt


def test_create_takes_a_window_and_defaults_to_a_minute(api, db):
    """POST /streams: `reconnect_window` as given, 60 when absent."""
    given = api.post("/streams", {"title": "Given", "reconnect_window": 0}).get_json()
    default = api.post("/streams", {"title": "Default"}).get_json()
    assert (given["reconnect_window"], default["reconnect_window"]) == (0, 60)
    db.session.rollback()
    rows = {s.public_id: s.reconnect_window for s in db.session.scalars(select(Stream))}
    assert rows == {given["id"]: 0, default["id"]: 60}


def test_patch_changes_the_window(api, db, owner, make_stream):
    """PATCH /streams/{id} {"reconnect_window": 1800} is stored and returned."""
    stream = make_stream(owner)
    reply = api.patch(f"/streams/{stream.public_id}", {"reconnect_window": 1800})
    assert reply.status_code == 200
    assert reply.get_json()["reconnect_window"] == 1800
    db.session.rollback()
    assert db.session.get(Stream, stream.id).reconnect_window == 1800


def test_a_reconnecting_stream_shows_its_deadline(api, db, owner, make_stream):
    """A stream whose publisher dropped reads `reconnecting` with the deadline;
    live again, no deadline."""
    stream = make_stream(owner, reconnect_window=90)
    publisher = PublishAttempt(stream.public_id, stream.stream_key, "c1", "rtmp")
    service.start_broadcast(db.session, publisher)
    db.session.commit()
    service.end_broadcast(db.session, stream.public_id, "c1")
    db.session.commit()
    body = api.get(f"/streams/{stream.public_id}").get_json()
    assert body["status"] == "reconnecting"
    deadline = datetime.fromisoformat(body["reconnect_deadline"])
    assert deadline == db.session.get(Stream, stream.id).reconnect_deadline
    service.start_broadcast(
        db.session, PublishAttempt(stream.public_id, stream.stream_key, "c2", "rtmp")
    )
    db.session.commit()
    body = api.get(f"/streams/{stream.public_id}").get_json()
    assert (body["status"], body["reconnect_deadline"]) == ("live", None)


def test_end_stops_a_reconnecting_broadcast_at_once(api, db, owner, make_stream):
    """POST /streams/{id}/end: the waiting broadcast ends now (reason
    stopped); a second call changes nothing."""
    stream = make_stream(owner, reconnect_window=600)
    service.start_broadcast(
        db.session, PublishAttempt(stream.public_id, stream.stream_key, "c1", "rtmp")
    )
    db.session.commit()
    service.end_broadcast(db.session, stream.public_id, "c1")
    db.session.commit()
    reply = api.post(f"/streams/{stream.public_id}/end")
    assert reply.status_code == 200
    assert (reply.get_json()["status"], reply.get_json()["reconnect_deadline"]) == ("ended", None)
    db.session.rollback()
    (broadcast,) = db.session.get(Stream, stream.id).broadcasts
    assert broadcast.end_reason == "stopped"
    again = api.post(f"/streams/{stream.public_id}/end")
    assert again.status_code == 200 and again.get_json()["status"] == "ended"
    db.session.rollback()
    assert db.session.get(Stream, stream.id).broadcasts[0].ended_at == broadcast.ended_at
