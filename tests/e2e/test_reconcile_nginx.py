"""The reconciler against real nginx-rtmp and ffmpeg: a publisher the database
does not know is dropped, a live row with no publisher is ended, and a real
publisher is left alone."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from studio.extensions import db
from studio.models import Broadcast, Stream, utcnow
from studio.streams import service
from tests.polling import poll
from workers import reconcile as reconciler


def _engine_has(studio_stack, public_id: str) -> bool:
    from studio.media import engines

    with studio_stack.app.app_context():
        return any(p.stream_name == public_id for p in engines.current().publishers())


def _grace(studio_stack) -> float:
    return float(studio_stack.app.config["RECONCILE_GRACE_SECONDS"])


def _reconcile(studio_stack, now: float) -> reconciler.Report:
    with studio_stack.app.app_context():
        return reconciler.reconcile(now=now)


def test_publisher_unknown_to_the_database_is_dropped(studio_stack, ffmpeg_publisher):
    """ffmpeg publishes, then the database loses the broadcast (as after a lost
    callback or a restore): after the grace period the reconciler drops the
    publisher at nginx-rtmp and ffmpeg's connection ends."""
    stream = studio_stack.create_stream(studio_stack.create_user())
    process = ffmpeg_publisher.start(stream.publish_url)
    assert poll(lambda: studio_stack.stream_row(stream.public_id)["status"] == "live", 15)
    assert poll(lambda: _engine_has(studio_stack, stream.public_id), 10)
    with studio_stack.app.app_context():
        broadcast = db.session.scalar(
            select(Broadcast).join(Stream).where(Stream.public_id == stream.public_id)
        )
        service.end_broadcast(
            db.session, stream.public_id, broadcast.client_id, broadcast.server_id, "desync"
        )
        db.session.commit()

    now = time.time()
    assert _reconcile(studio_stack, now).dropped == []
    assert process.poll() is None
    assert _reconcile(studio_stack, now + _grace(studio_stack)).dropped == [stream.public_id]
    process.wait(timeout=20)
    assert poll(lambda: not _engine_has(studio_stack, stream.public_id), 10)


def test_live_row_without_a_publisher_is_ended(studio_stack):
    """A broadcast open in the database that nginx-rtmp does not have (its
    unpublish callback was lost) is ended once the grace period has passed."""
    stream = studio_stack.create_stream(studio_stack.create_user())
    with studio_stack.app.app_context():
        attempt = service.PublishAttempt(
            stream_name=stream.public_id,
            secret=stream.stream_key,
            client_id="9999",
            protocol="rtmp",
        )
        broadcast = service.start_broadcast(db.session, attempt)
        broadcast.started_at = utcnow() - timedelta(minutes=5)
        db.session.commit()

    now = time.time()
    assert _reconcile(studio_stack, now).ended == []
    assert _reconcile(studio_stack, now + _grace(studio_stack)).ended == [stream.public_id]
    row = studio_stack.stream_row(stream.public_id)
    assert row["status"] == "ended"


def test_real_publisher_is_left_alone(studio_stack, ffmpeg_publisher):
    """A stream that is live both in the database and at nginx-rtmp stays live."""
    stream = studio_stack.create_stream(studio_stack.create_user())
    process = ffmpeg_publisher.start(stream.publish_url)
    assert poll(lambda: _engine_has(studio_stack, stream.public_id), 15)
    assert poll(lambda: studio_stack.stream_row(stream.public_id)["status"] == "live", 10)
    now = time.time()
    for offset in (0, 10 * _grace(studio_stack)):
        report = _reconcile(studio_stack, now + offset)
        assert stream.public_id not in report.ended + report.dropped
    assert process.poll() is None
    assert studio_stack.stream_row(stream.public_id)["status"] == "live"
