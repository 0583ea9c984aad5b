"""Nothing piles up in the local HLS directory: abandoned `.ts.tmp`
fragments and the playlists of ended broadcasts are deleted once safe, with
real files, the real sync job and a real fake-gcs-server."""

from __future__ import annotations

import os
import time

from studio.media.pipeline import Keys
from studio.storage import layout
from studio.streams import service as streams
from workers import jobs
from workers.pipeline import local_hls
from workers.watcher import Watcher

AGE = local_hls.leftover_age(2.0)


def _age(path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def _end(db, stream) -> None:
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()


def test_abandoned_tmp_fragment_is_deleted_a_live_one_kept(pipeline_app, db, live_stream):
    """A `.ts.tmp` untouched for the leftover age (the engine was killed
    while writing it) is deleted; the one being written now stays, even
    while the stream is live."""
    stream, _broadcast, hls = live_stream
    abandoned = hls.live / f"{stream.public_id}-3.ts.tmp"
    writing = hls.live / f"{stream.public_id}-9.ts.tmp"
    abandoned.write_bytes(b"\x47" * 188)
    writing.write_bytes(b"\x47" * 188)
    _age(abandoned, AGE + 1)

    jobs.sync_stream(stream.public_id)

    assert not abandoned.exists()
    assert writing.exists()


def test_playlist_of_an_ended_broadcast_goes_once_in_the_bucket(
    pipeline_app, db, bucket, live_stream
):
    """After the broadcast ends, its segments and playlist are uploaded; the
    local playlist is deleted once the engine has left it alone for the
    leftover age. The bucket keeps everything."""
    stream, broadcast, hls = live_stream
    for number in range(1, 4):
        hls.add_segment(number)
    hls.write_playlist([1, 2, 3])
    playlist = local_hls.playlist_path(pipeline_app.config["HLS_DIR"], stream.public_id)
    _end(db, stream)

    jobs.sync_stream(stream.public_id)
    assert playlist.exists()  # just written: the engine may still touch it
    assert hls.local_names() == []

    _age(playlist, AGE + 1)
    jobs.sync_stream(stream.public_id)

    assert not playlist.exists()
    assert list(hls.live.iterdir()) == []
    assert bucket.get(layout.live_playlist(stream.public_id))[0] == 200
    for number in range(1, 4):
        assert bucket.get(layout.segment(stream.public_id, broadcast.id, number))[0] == 200


def test_playlist_stays_while_live_or_not_yet_in_the_bucket(
    pipeline_app, db, live_stream, monkeypatch
):
    """An old playlist of a live broadcast stays; so does the playlist of an
    ended one whose segments could not be uploaded (the bucket is down)."""
    stream, _broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    playlist = local_hls.playlist_path(pipeline_app.config["HLS_DIR"], stream.public_id)
    _age(playlist, AGE + 1)
    jobs.sync_stream(stream.public_id)
    assert playlist.exists()

    _end(db, stream)
    hls.add_segment(2, mtime=time.time() - AGE - 1)
    hls.write_playlist([1, 2])
    _age(playlist, AGE + 1)
    monkeypatch.setitem(pipeline_app.config, "STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    down = jobs.sync_stream(stream.public_id)

    assert down["failed"] >= 1
    assert playlist.exists()
    assert hls.local_names() == [f"{stream.public_id}-2.ts"]


def test_watcher_sweep_triggers_the_tidy_up_of_leftovers(pipeline_app, db, redis, live_stream):
    """The watcher's periodic sweep queues a sync for a stream whose only
    local file is an old playlist or `.ts.tmp`, once per leftover age."""
    stream, _broadcast, hls = live_stream
    hls.write_playlist([1])
    playlist = local_hls.playlist_path(pipeline_app.config["HLS_DIR"], stream.public_id)
    _age(playlist, AGE + 1)
    redis.hset(Keys.playlist(stream.public_id), "mtime", playlist.stat().st_mtime)
    watcher = Watcher(pipeline_app)
    try:
        assert watcher.sweep() == 1
        assert redis.zscore(Keys.dirty_streams("default"), stream.public_id) is not None
        assert redis.exists(Keys.queued("default"))
        assert watcher.sweep() == 0  # not again before the leftover age passed
    finally:
        watcher.inotify.close()
