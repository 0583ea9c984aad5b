"""Thumbnails: a frame of the latest uploaded segment, cut with PyAV by the
sync pass from the local file, written to the bucket as the stream's live
thumbnail and the broadcast's own; no job."""

from __future__ import annotations

import json
import subprocess
import time

from studio.media import pipeline
from studio.models import Broadcast, Stream
from studio.storage import layout
from studio.streams import service as streams
from tests.conftest import FIXTURES
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


def _sync(hls, stream, numbers, source=None):
    for number in numbers:
        hls.add_segment(number, source=source)
    hls.write_playlist(list(range(1, numbers[-1] + 1)))
    return jobs.sync_stream(stream.public_id)


def test_sync_writes_a_live_and_a_broadcast_thumbnail(pipeline_app, db, redis, bucket, live_stream):
    """The sync pass that uploads a live broadcast's segments writes a JPEG
    of its latest one as live/{id}/thumbnail.jpg (cached 10 s) and
    live/{id}/{broadcast}/thumbnail.jpg (immutable) and records when; the
    local files are gone."""
    stream, broadcast, hls = live_stream
    result = _sync(hls, stream, [1])

    assert result["uploaded"] == 1
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
    assert not hls.segment_path(1).exists()
    db.session.expire_all()
    assert db.session.get(Stream, stream.id).thumbnail_at is not None
    assert db.session.get(Broadcast, broadcast.id).thumbnail_at is not None


def test_one_live_thumbnail_per_interval_and_the_broadcasts_first_stays(
    pipeline_app, db, redis, bucket, live_stream
):
    """Passes within THUMBNAIL_INTERVAL leave the live thumbnail alone; the
    first pass after it writes the newest segment's frame; the broadcast's
    thumbnail stays its first frame."""
    stream, broadcast, hls = live_stream
    _sync(hls, stream, [1], source=0)
    first = bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[2]
    assert 0 < redis.ttl(pipeline.Keys.thumbnail(broadcast.id)) <= pipeline.THUMBNAIL_INTERVAL

    _sync(hls, stream, [2], source=5)  # a later moment of the test pattern
    assert bucket.get(layout.live_thumbnail(stream.public_id))[2] == first

    redis.delete(pipeline.Keys.thumbnail(broadcast.id))  # the interval is over
    _sync(hls, stream, [3], source=5)
    assert bucket.get(layout.live_thumbnail(stream.public_id))[2] != first
    assert bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[2] == first


def test_ended_broadcast_does_not_replace_the_live_thumbnail(pipeline_app, db, bucket, live_stream):
    """Segments synced after their broadcast ended give it its missing
    thumbnail only: the stream's live one may already show a newer broadcast."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1, mtime=time.time() - 1)
    hls.write_playlist([1])
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()

    assert jobs.sync_stream(stream.public_id)["uploaded"] == 1
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 404
    assert bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[0] == 200


def test_a_segment_without_a_picture_is_still_synced(pipeline_app, db, redis, bucket, live_stream):
    """A local segment PyAV cannot read: the segment is uploaded and
    recorded all the same, and no thumbnail is written."""
    stream, broadcast, hls = live_stream
    hls.segment_path(1).write_bytes(b"not video" * 100)
    hls.write_playlist([1])

    assert jobs.sync_stream(stream.public_id)["uploaded"] == 1
    assert bucket.get(layout.segment(stream.public_id, broadcast.id, 1))[0] == 200
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 404
    assert bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[0] == 404


def test_the_first_thumbnail_waits_for_its_delay_after_the_start(
    pipeline_app, db, redis, bucket, live_stream, monkeypatch
):
    """A broadcast that started less than its `first_delay` ago gets no
    thumbnail; the first pass after the delay cuts one."""
    stream, broadcast, hls = live_stream
    with monkeypatch.context() as patch:
        patch.setattr(thumbnails, "first_delay", lambda _id: 3600.0)
        _sync(hls, stream, [1])
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 404

    # The fixture's broadcast started a minute ago: past any real delay.
    _sync(hls, stream, [2])
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 200
    assert bucket.get(layout.broadcast_thumbnail(stream.public_id, broadcast.id))[0] == 200


def test_first_delays_are_spread_over_the_interval():
    """Consecutive broadcasts' first frames fall at different moments of
    the interval."""
    delays = [thumbnails.first_delay(n) for n in range(1, 11)]
    assert all(0 <= d < pipeline.THUMBNAIL_INTERVAL for d in delays)
    assert min(abs(a - b) for i, a in enumerate(delays) for b in delays[i + 1 :]) > 0.5


def test_a_stream_behind_gets_its_segments_first(pipeline_app, db, redis, bucket, live_stream):
    """A pass that finds several segments waiting (the stream is behind)
    uploads them and cuts no thumbnail; a pass that keeps up cuts one."""
    stream, broadcast, hls = live_stream
    assert _sync(hls, stream, [1, 2, 3])["uploaded"] == 3
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 404

    assert _sync(hls, stream, [4])["uploaded"] == 1
    assert bucket.get(layout.live_thumbnail(stream.public_id))[0] == 200


def test_the_keyframe_is_the_one_the_container_gives(ts_segments):
    """The frame decoded from the video track's elementary stream is the
    one FFmpeg's own demuxing gives, also for SRS's WHIP segments, which
    begin with the end of the previous GOP."""
    whip = sorted((FIXTURES / "srs5" / "whip-hls").glob("*.ts"))
    for path in [*ts_segments, *whip]:
        video = path.read_bytes()
        direct = thumbnails._first_keyframe(video)
        assert direct is not None, path.name
        demuxed = thumbnails._first_keyframe_of_container(video)
        assert thumbnails._encode_jpeg(direct) == thumbnails._encode_jpeg(demuxed), path.name
