"""A change of visibility moves a stream's objects between the bucket's
public (`live/`) and private (`private/`) prefixes, while it is live."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from studio.media import pipeline
from studio.models import Segment
from studio.storage import layout
from studio.streams import access
from tests.workers.burst import run_jobs
from workers import jobs


def _object_names(db, broadcast_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(Segment.object_name)
            .where(Segment.broadcast_id == broadcast_id)
            .order_by(Segment.sequence)
        )
    )


def _uris(playlist: bytes) -> list[str]:
    return [line for line in playlist.decode().splitlines() if line and not line.startswith("#")]


def test_going_private_and_back_while_live_moves_every_object(
    pipeline_app, db, redis, bucket, live_stream
):
    """Made private while live: the committed change queues the move job; it
    copies the folder (headers kept) to private/, points the segments there
    and empties live/; the next sync writes new segments and the playlist
    under private/ only. Made public again, everything comes back."""
    stream, broadcast, hls = live_stream
    public_id = stream.public_id
    for number in (1, 2, 3):
        hls.add_segment(number)
    hls.write_playlist([1, 2, 3])
    assert jobs.sync_stream(public_id)["uploaded"] == 3

    access.set_visibility(db.session, stream, "private")
    db.session.commit()  # after the commit: the move job is queued
    run_jobs(redis)

    for number in (1, 2, 3):
        assert bucket.get(layout.segment(public_id, broadcast.id, number))[0] == 404
        status, headers, _ = bucket.get(layout.segment(public_id, broadcast.id, number, True))
        assert status == 200
        assert headers["Content-Type"] == "video/mp2t"
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert bucket.get(layout.live_playlist(public_id))[0] == 404
    assert bucket.get(layout.live_playlist(public_id, True))[0] == 200
    db.session.expire_all()
    assert _object_names(db, broadcast.id) == [
        layout.segment(public_id, broadcast.id, n, True) for n in (1, 2, 3)
    ]

    for number in (4, 5):
        hls.add_segment(number)
    hls.write_playlist([1, 2, 3, 4, 5])
    assert jobs.sync_stream(public_id)["uploaded"] == 2
    assert bucket.get(layout.segment(public_id, broadcast.id, 5))[0] == 404
    status, _, playlist = bucket.get(layout.live_playlist(public_id, True))
    assert status == 200
    uris = _uris(playlist)
    assert uris == [f"{broadcast.id}/{n}.ts" for n in (1, 2, 3, 4, 5)]
    for uri in uris:  # relative to the playlist: all in the private folder
        assert bucket.get(layout.stream_prefix(public_id, True) + uri)[0] == 200

    access.set_visibility(db.session, stream, "unlisted")
    db.session.commit()
    run_jobs(redis)
    db.session.expire_all()
    assert _object_names(db, broadcast.id) == [
        layout.segment(public_id, broadcast.id, n) for n in (1, 2, 3, 4, 5)
    ]
    assert bucket.get(layout.live_playlist(public_id, True))[0] == 404
    status, _, playlist = bucket.get(layout.live_playlist(public_id))
    assert status == 200 and _uris(playlist)[-1] == f"{broadcast.id}/5.ts"


def test_public_to_unlisted_moves_nothing(pipeline_app, db, redis, bucket, live_stream):
    """Unlisted objects are public objects: no job, nothing copied."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    access.set_visibility(db.session, stream, "unlisted")
    db.session.commit()
    assert pipeline.media_queue(redis, pipeline.QUEUE_NAME).count == 0
    assert bucket.get(layout.segment(stream.public_id, broadcast.id, 1))[0] == 200


def test_move_is_idempotent_and_refuses_bad_names(pipeline_app, db, bucket, live_stream):
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    # the segment, the playlist and the two thumbnails, once cut
    thumbnails = 2 if bucket.get(layout.live_thumbnail(stream.public_id))[0] == 200 else 0
    stream.visibility = "private"
    db.session.commit()
    first = jobs.move_stream(stream.public_id)
    assert first["status"] == "moved" and first["copied"] == 2 + thumbnails
    again = jobs.move_stream(stream.public_id)
    assert again == {
        "status": "moved",
        "to": f"private/{stream.public_id}/",
        "copied": 0,
        "deleted": 0,
    }
    assert bucket.get(layout.segment(stream.public_id, broadcast.id, 1, True))[0] == 200
    for bad in ("../live", "a/b", ""):
        with pytest.raises(ValueError):
            jobs.move_stream(bad)


def test_a_replay_written_during_a_move_is_carried_over(
    pipeline_app, db, redis, bucket, live_stream, monkeypatch
):
    """The replay job does not hold the sync lock: if the stream turns private
    while it writes (after the move ran), it queues the move again, and the
    late replay ends up under private/ with the rest."""
    from sqlalchemy import text

    from studio.storage import gcs
    from studio.streams import service as streams

    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()
    upload = gcs.Storage.upload_replay_playlist

    def go_private_then_upload(self, name, playlist):
        with db.engine.begin() as connection:  # another request, committed meanwhile
            connection.execute(
                text("UPDATE streams SET visibility = 'private' WHERE id = :id"), {"id": stream.id}
            )
        jobs.move_stream(stream.public_id)  # and the move ran before this write
        upload(self, name, playlist)

    monkeypatch.setattr(gcs.Storage, "upload_replay_playlist", go_private_then_upload)
    assert jobs.finalize_broadcast(broadcast.id)["status"] == "ready"
    assert bucket.get(layout.replay_playlist(stream.public_id, broadcast.id))[0] == 200  # late
    run_jobs(redis)
    assert bucket.get(layout.replay_playlist(stream.public_id, broadcast.id))[0] == 404
    assert bucket.get(layout.replay_playlist(stream.public_id, broadcast.id, True))[0] == 200


def test_private_objects_go_to_the_private_bucket_when_one_is_set(
    pipeline_app, db, redis, bucket, fake_gcs, live_stream, monkeypatch
):
    """Production keeps private streams in a bucket without public access
    (STUDIO_GCS_PRIVATE_BUCKET): the move copies across buckets, and new
    segments of a private stream are written there, not in the public one."""
    import os

    import requests

    from devtools.services import create_bucket

    private_bucket = f"private-{os.urandom(4).hex()}"
    create_bucket(fake_gcs.url, private_bucket)
    monkeypatch.setitem(pipeline_app.config, "GCS_PRIVATE_BUCKET", private_bucket)

    def in_private_bucket(name: str) -> int:
        return requests.get(f"{fake_gcs.url}/{private_bucket}/{name}", timeout=10).status_code

    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    jobs.sync_stream(stream.public_id)
    access.set_visibility(db.session, stream, "private")
    db.session.commit()
    run_jobs(redis)
    hls.add_segment(2)
    hls.write_playlist([1, 2])
    jobs.sync_stream(stream.public_id)

    for number in (1, 2):
        name = layout.segment(stream.public_id, broadcast.id, number, True)
        assert in_private_bucket(name) == 200
        assert bucket.get(name)[0] == 404
        assert bucket.get(layout.segment(stream.public_id, broadcast.id, number))[0] == 404
    assert in_private_bucket(layout.live_playlist(stream.public_id, True)) == 200
