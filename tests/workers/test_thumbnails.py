"""Thumbnails: a frame of the latest uploaded segment, cut by ffmpeg in a job,
written to the bucket as the stream's live thumbnail and the broadcast's own."""

from __future__ import annotations

import json
import subprocess

import pytest

from studio.media import pipeline
from studio.models import Broadcast, Stream
from studio.storage import layout
from studio.streams import service as streams
from workers import jobs
from workers.pipeline import thumbnails

LIVE_CACHE = "public, max-age=10"
IMMUTABLE = "public, max-age=31536000, immutable"


def _picture_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG as ffprobe decodes it."""
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "json",
            "-i",
            "pipe:0",
        ],
        input=jpeg,
        capture_output=True,
        check=True,
        timeout=30,
    )
    picture = json.loads(probe.stdout)["streams"][0]
    assert picture["codec_name"] == "mjpeg"
    return picture["width"], picture["height"]


def _thumbnail_jobs(redis) -> list[list]:
    queue = pipeline.media_queue(redis, pipeline.REPLAY_QUEUE_NAME)
    return [job.args for job in queue.get_jobs() if job.func_name == pipeline.THUMBNAIL_JOB]


def test_live_broadcast_gets_a_live_and_a_broadcast_thumbnail(
    pipeline_app, db, redis, bucket, live_stream
):
    """After segments are synced, the job writes a JPEG of the stream as
    live/{id}/thumbnail.jpg (cached 10 s) and live/{id}/{broadcast}/thumbnail.jpg
    (immutable), and records when."""
    stream, broadcast, hls = live_stream
    for number in range(1, 4):
        hls.add_segment(number)
    hls.write_playlist([1, 2, 3])
    jobs.sync_stream(stream.public_id)

    result = jobs.make_thumbnail(broadcast.id)

    assert result == {"status": "ok", "segment": 3, "written": ["live", "broadcast"]}
    status, headers, live = bucket.get(layout.live_thumbnail(stream.public_id))
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == LIVE_CACHE
    assert _picture_size(live) == (320, 180)
    status, headers, own = bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == IMMUTABLE
    assert own == live
    db.session.expire_all()
    assert db.session.get(Stream, stream.id).thumbnail_at is not None
    assert db.session.get(Broadcast, broadcast.id).thumbnail_at is not None


def test_rerun_refreshes_the_live_thumbnail_and_keeps_the_broadcasts_first(
    pipeline_app, db, bucket, live_stream
):
    """A later run takes the newest segment for the live thumbnail; the
    broadcast's thumbnail stays its first frame."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1, source=0)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    jobs.make_thumbnail(broadcast.id)
    first = bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[2]

    hls.add_segment(2, source=5)  # a later moment of the test pattern
    hls.write_playlist([1, 2])
    jobs.sync_stream(stream.public_id)
    result = jobs.make_thumbnail(broadcast.id)

    assert result["segment"] == 2 and result["written"] == ["live"]
    assert bucket.get(layout.live_thumbnail(stream.public_id))[2] != first
    assert bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[2] == first


def test_ended_broadcast_does_not_replace_the_live_thumbnail(pipeline_app, db, bucket, live_stream):
    """A job that runs after its broadcast ended writes only the broadcast's
    missing thumbnail: the stream's live one may already show a newer broadcast."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()

    assert jobs.make_thumbnail(broadcast.id)["written"] == ["broadcast"]
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 404
    assert bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[0] == 200


def test_no_segment_yet_or_unknown_broadcast_writes_nothing(pipeline_app, db, bucket, live_stream):
    """Before the first segment is in the bucket there is nothing to cut."""
    stream, broadcast, _ = live_stream
    assert jobs.make_thumbnail(broadcast.id) == {"status": "no segment"}
    assert jobs.make_thumbnail(999_999) == {"status": "missing"}
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 404


def test_sync_queues_at_most_one_thumbnail_per_interval(pipeline_app, db, redis, live_stream):
    """A sync pass that uploads a live broadcast's segments queues a thumbnail
    job (JSON args: the broadcast id); passes within the interval queue no more."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    hls.add_segment(2)
    hls.write_playlist([1, 2])
    jobs.sync_stream(stream.public_id)

    assert _thumbnail_jobs(redis) == [[broadcast.id]]
    assert 0 < redis.ttl(pipeline.Keys.thumbnail(broadcast.id)) <= pipeline.THUMBNAIL_INTERVAL


def test_a_segment_ffmpeg_cannot_read_fails_the_job(pipeline_app, db, bucket, live_stream):
    """Garbage in the bucket: the job raises (RQ retries it) and writes nothing."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    bucket.put(layout.segment(stream.public_id, broadcast.id, 1), b"not video" * 100)

    with pytest.raises(thumbnails.ThumbnailError):
        jobs.make_thumbnail(broadcast.id)
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 404
