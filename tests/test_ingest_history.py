"""Ingest health over the last ten minutes: samples from the engine, segment
lengths from the database, warnings in words, and who may read them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from studio import ingest_history
from studio.core.segments import UploadedSegment, record_segments
from studio.models import Broadcast

FRAGMENT = 2.0


def _sample(at: float, kbps=2500, fps=30.0, audio=True, bytes_in=None):
    return ingest_history.Sample(at=at, kbps=kbps, fps=fps, audio=audio, bytes_in=bytes_in)


def test_samples_are_kept_ten_minutes_oldest_first(redis):
    """Samples older than the window are left out; the rest come oldest first."""
    now = time.time()
    for age in (700, 30, 10):
        ingest_history.record(redis, "abc", _sample(now - age, kbps=age))
    rows = ingest_history.samples(redis, "abc", now)
    assert [row["kbps"] for row in rows] == [30, 10]
    assert "bytes_in" not in rows[0]


def test_bitrate_is_measured_from_bytes_when_the_engine_averages_slowly(redis):
    """nginx-rtmp and SRS report 0 kbit/s for the first seconds; with bytes
    received the rate is measured between two samples, and the first is
    unknown (the chart leaves it out) rather than a drop to 0."""
    now = time.time()
    ingest_history.record(redis, "abc", _sample(now - 10, kbps=0, bytes_in=1_000_000))
    ingest_history.record(redis, "abc", _sample(now, kbps=0, bytes_in=4_125_000))
    assert [row["kbps"] for row in ingest_history.samples(redis, "abc", now)] == [None, 2500]


def test_a_reconnected_encoder_is_not_measured_against_the_last_one(redis):
    """Fewer bytes than the previous sample means a new connection: the
    engine's figure stands (None while it reads 0), not a negative rate."""
    now = time.time()
    ingest_history.record(redis, "abc", _sample(now - 20, kbps=0, bytes_in=9_000_000))
    ingest_history.record(redis, "abc", _sample(now - 10, kbps=0, bytes_in=50_000))
    ingest_history.record(redis, "abc", _sample(now, kbps=1800, bytes_in=60_000))
    assert [row["kbps"] for row in ingest_history.samples(redis, "abc", now)] == [None, None, 8]


def test_long_segments_warn_about_the_keyframe_interval():
    """Segments of 6 s at 2 s fragments mean keyframes 6 s apart: the warning
    says so and what to set; 2 s segments raise nothing."""
    long = [{"at": i, "seconds": 6.0} for i in range(4)]
    short = [{"at": i, "seconds": 2.0} for i in range(4)]
    healthy = [{"at": i, "kbps": 2500, "fps": 30, "audio": True} for i in range(5)]
    (warning,) = ingest_history.warnings(healthy, long, FRAGMENT)
    assert "every 6 s" in warning and "keyframe interval to 2 s" in warning
    assert ingest_history.warnings(healthy, short, FRAGMENT) == []


def test_a_bitrate_drop_and_missing_audio_are_told():
    """Half the usual bitrate, or no audio in the last samples, each give a warning."""
    history = [{"at": i, "kbps": 2500, "fps": 30, "audio": True} for i in range(5)]
    history += [{"at": 5, "kbps": 600, "fps": 30, "audio": False}]
    history += [{"at": 6, "kbps": 500, "fps": 30, "audio": False}]
    found = ingest_history.warnings(history, [], FRAGMENT)
    assert any("fell from about 2500 to 500 kbit/s" in text for text in found)
    assert any("No audio" in text for text in found)


def test_the_owner_reads_the_history_others_do_not(client, auth, db, redis, make_user, make_stream):
    """The stream page's chart data: samples, segment lengths of the last ten
    minutes and warnings for the owner; 404 for another creator."""
    owner = make_user()
    stream = make_stream(owner)
    now = time.time()
    ingest_history.record(redis, stream.public_id, _sample(now - 5))
    broadcast = Broadcast(stream_id=stream.id, client_id="c1", protocol="rtmp")
    db.session.add(broadcast)
    db.session.flush()
    started = datetime.fromtimestamp(now - 20, tz=UTC)
    record_segments(
        db.session,
        [UploadedSegment(broadcast.id, n, 6.0, f"s{n}.ts", 1, False, started) for n in range(3)],
    )
    db.session.commit()

    auth.login(owner.email)
    reply = client.get(f"/streams/{stream.public_id}/ingest-history")
    assert reply.status_code == 200
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.get_json()
    assert [row["kbps"] for row in body["samples"]] == [2500]
    assert [row["seconds"] for row in body["segments"]] == [6.0, 6.0, 6.0]
    assert body["fragment"] == client.application.config["HLS_FRAGMENT"]
    assert any("Keyframes arrive only every 6 s" in text for text in body["warnings"])

    auth.logout()
    auth.login(make_user().email)
    assert client.get(f"/streams/{stream.public_id}/ingest-history").status_code == 404
