"""The per-stream sync job against a real fake-gcs-server and real segments."""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from studio.media.pipeline import Keys
from studio.models import Segment
from studio.storage import layout
from studio.streams import service as streams
from workers import jobs
from workers.pipeline import live, sync


def _rows(db, broadcast_id: int) -> list[tuple[int, float]]:
    db.session.expire_all()
    query = select(Segment).where(Segment.broadcast_id == broadcast_id).order_by(Segment.sequence)
    return [(s.sequence, round(s.duration, 3)) for s in db.session.scalars(query)]


def _uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def _assert_every_uri_exists(bucket, public_id: str, playlist: str) -> None:
    for uri in _uris(playlist):
        status, _, _ = bucket.get(f"{layout.stream_prefix(public_id)}{uri}")
        assert status == 200, f"playlist names missing object {uri}"


def test_segments_then_playlist_with_their_headers(pipeline_app, db, bucket, live_stream):
    """Every listed segment is uploaded as video/mp2t cached for a year, then
    the live playlist (mpegurl, max-age no longer than half a fragment)
    naming exactly those objects; local segments are deleted."""
    stream, broadcast, hls = live_stream
    for number in range(1, 7):
        hls.add_segment(number)
    hls.write_fixture_playlist()

    result = jobs.sync_stream(stream.public_id)

    assert result["uploaded"] == 6 and result["failed"] == 0
    assert result["playlist_written"] is True
    for number in range(1, 7):
        status, headers, body = bucket.get(layout.segment(stream.public_id, broadcast.id, number))
        assert status == 200
        assert headers["Content-Type"] == "video/mp2t"
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert body == hls.segments[number].read_bytes()
    status, headers, body = bucket.get(layout.live_playlist(stream.public_id))
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Cache-Control"] == "public, max-age=1"
    playlist = body.decode()
    assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in range(1, 7)]
    assert "#EXT-X-MEDIA-SEQUENCE:1\n" in playlist
    assert "#EXTINF:1.667," in playlist
    assert "#EXT-X-ENDLIST" not in playlist
    _assert_every_uri_exists(bucket, stream.public_id, playlist)
    assert hls.local_names() == []
    assert _rows(db, broadcast.id) == [(1, 2.0), (2, 2.0), (3, 2.0), (4, 2.0), (5, 2.0), (6, 1.667)]


def test_rerun_is_idempotent(pipeline_app, db, bucket, live_stream):
    """A second run, and a run after an upload that was never recorded,
    change nothing and duplicate nothing."""
    stream, broadcast, hls = live_stream
    for number in range(1, 7):
        hls.add_segment(number)
    hls.write_fixture_playlist()
    # An earlier attempt put segment 1 in the bucket, then died before recording it.
    bucket.put(layout.segment(stream.public_id, broadcast.id, 1), hls.segments[1].read_bytes())

    first = jobs.sync_stream(stream.public_id)
    playlist = bucket.get(layout.live_playlist(stream.public_id))[2]
    second = jobs.sync_stream(stream.public_id)

    assert first["uploaded"] == 6
    assert second == {**second, "uploaded": 0, "failed": 0, "playlist_written": False}
    assert bucket.get(layout.live_playlist(stream.public_id))[2] == playlist
    assert [n for n, _ in _rows(db, broadcast.id)] == [1, 2, 3, 4, 5, 6]


def test_failed_segment_stays_local_and_out_of_the_playlist(pipeline_app, db, bucket, live_stream):
    """A segment whose upload fails is kept on disk, not recorded, and the
    live playlist stops before it; once the bucket accepts it, the next run
    completes the playlist."""
    stream, broadcast, hls = live_stream
    for number in range(1, 7):
        hls.add_segment(number)
    hls.write_fixture_playlist()
    blocked = layout.segment(stream.public_id, broadcast.id, 4)
    bucket.put(blocked, b"other content")  # the immutable upload of 4 conflicts

    result = jobs.sync_stream(stream.public_id)

    assert result["failed"] == 1
    assert hls.segment_path(4).exists()
    assert 4 not in [n for n, _ in _rows(db, broadcast.id)]
    playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in (1, 2, 3)]

    from studio.storage import gcs

    gcs.get_storage(pipeline_app.config).bucket.blob(blocked).delete()
    hls.add_segment(4)  # unchanged file, fresh mtime
    retry = jobs.sync_stream(stream.public_id)

    assert retry["failed"] == 0 and retry["uploaded"] >= 1
    playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in range(1, 7)]
    _assert_every_uri_exists(bucket, stream.public_id, playlist)
    assert hls.local_names() == []


def test_bucket_down_keeps_everything_local(pipeline_app, db, live_stream, monkeypatch):
    """With the bucket unreachable nothing is deleted or recorded, and no
    playlist is written; everything is uploaded in order when it is back."""
    stream, broadcast, hls = live_stream
    for number in range(1, 7):
        hls.add_segment(number)
    hls.write_fixture_playlist()
    reachable = pipeline_app.config["STORAGE_EMULATOR_HOST"]
    monkeypatch.setitem(pipeline_app.config, "STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")

    down = jobs.sync_stream(stream.public_id)

    assert down["uploaded"] == 0 and down["failed"] >= 1
    assert len(hls.local_names()) == 6
    assert _rows(db, broadcast.id) == []

    monkeypatch.setitem(pipeline_app.config, "STORAGE_EMULATOR_HOST", reachable)
    up = jobs.sync_stream(stream.public_id)

    assert up["uploaded"] == 6
    assert [n for n, _ in _rows(db, broadcast.id)] == [1, 2, 3, 4, 5, 6]


def test_backlog_beyond_the_window_gets_durations_from_timestamps(
    pipeline_app, db, bucket, live_stream
):
    """Segments that already left the engine's playlist (uploader down for a
    while) are uploaded too, in order, with durations read from their PTS."""
    stream, broadcast, hls = live_stream
    now = time.time()
    for number in range(0, 8):
        hls.add_segment(number, mtime=now - (8 - number) * 2)
    hls.write_playlist([5, 6, 7])

    result = jobs.sync_stream(stream.public_id)

    assert result["uploaded"] == 8
    rows = _rows(db, broadcast.id)
    assert [n for n, _ in rows] == list(range(8))
    assert all(abs(duration - 2.0) < 0.05 for _, duration in rows), rows
    playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in (5, 6, 7)]


def test_open_fragment_is_not_uploaded_while_live(pipeline_app, db, live_stream):
    """nginx-rtmp writes the open fragment under its final name: a file newer
    than the playlist's last entry is left alone while the stream is live."""
    stream, broadcast, hls = live_stream
    for number in (1, 2, 3):
        hls.add_segment(number)
    hls.write_playlist([1, 2])

    result = jobs.sync_stream(stream.public_id)

    assert result["uploaded"] == 2
    assert hls.local_names() == [f"{stream.public_id}-3.ts"]


def test_segments_go_to_the_broadcast_of_their_time(pipeline_app, db, bucket, live_stream):
    """A segment belongs to the broadcast whose time window contains it; the
    live playlist marks the change of broadcast with a discontinuity."""
    stream, first, hls = live_stream
    now = time.time()
    hls.add_segment(1, mtime=now - 1)
    hls.add_segment(2, mtime=now - 1)
    hls.write_playlist([1, 2])
    jobs.sync_stream(stream.public_id)
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()
    second = streams.start_broadcast(
        db.session,
        streams.PublishAttempt(
            stream.public_id, stream.stream_key, "client-2", "rtmp", server_id="nginx-rtmp"
        ),
    )
    db.session.commit()
    hls.add_segment(3, source=3)
    hls.add_segment(4, source=4)
    hls.write_playlist([1, 2, 3, 4])

    jobs.sync_stream(stream.public_id)

    assert [n for n, _ in _rows(db, first.id)] == [1, 2]
    assert [n for n, _ in _rows(db, second.id)] == [3, 4]
    playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert _uris(playlist) == [
        f"{first.id}/1.ts",
        f"{first.id}/2.ts",
        f"{second.id}/3.ts",
        f"{second.id}/4.ts",
    ]
    assert re.search(
        rf"#EXT-X-DISCONTINUITY\n(#EXT-X-PROGRAM-DATE-TIME:\S+\n)?#EXTINF:[\d.]+,\n{second.id}/3.ts",
        playlist,
    )


def test_a_trigger_during_a_pass_is_not_lost(pipeline_app, db, redis, live_stream):
    """While another worker holds the stream's lock, a sync only marks the
    stream dirty; the holder's drain then runs the pass it asked for."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    holder = redis.lock(Keys.lock(stream.public_id), timeout=30)
    assert holder.acquire(blocking=False)

    blocked = jobs.sync_stream(stream.public_id)

    assert blocked["uploaded"] == 0
    assert redis.get(Keys.dirty(stream.public_id)) == b"1"
    holder.release()
    drained = sync.drain(pipeline_app, redis, [stream.public_id])
    assert drained.uploaded == 1
    assert redis.get(Keys.dirty(stream.public_id)) is None


def test_a_second_ask_after_an_upload_finds_nothing_new(pipeline_app, db, redis, live_stream):
    """A pass right after one that uploaded is skipped when nothing changed on
    disk; a new segment in the meantime gets its pass."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    redis.set(Keys.dirty(stream.public_id), 1)
    first = sync.drain(pipeline_app, redis, [stream.public_id])
    assert first.uploaded == 1 and first.playlist_written
    assert sync.nothing_new(pipeline_app, redis, stream.public_id)

    hls.add_segment(2)
    hls.write_playlist([1, 2])

    assert not sync.nothing_new(pipeline_app, redis, stream.public_id)
    redis.set(Keys.dirty(stream.public_id), 1)
    assert sync.drain(pipeline_app, redis, [stream.public_id]).uploaded == 1
    assert hls.local_names() == []


@contextmanager
def _window_queries(db):
    """The statements that ask the database which segments of the window are recorded."""
    asked: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if "FROM segments" in statement and "segments.sequence IN" in statement:
            asked.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield asked
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_a_pass_names_recorded_segments_from_its_notes(pipeline_app, db, bucket, live_stream):
    """A pass knows which segments of the engine's window earlier passes put
    in the bucket from their notes, without asking the database; the live
    playlist names every one of them."""
    stream, broadcast, hls = live_stream
    for number in (1, 2, 3):
        hls.add_segment(number)
    hls.write_playlist([1, 2, 3])
    jobs.sync_stream(stream.public_id)
    hls.add_segment(4)
    hls.write_playlist([1, 2, 3, 4])

    with _window_queries(db) as asked:
        result = jobs.sync_stream(stream.public_id)

    assert result["uploaded"] == 1 and result["playlist_written"]
    assert asked == []
    playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in (1, 2, 3, 4)]
    _assert_every_uri_exists(bucket, stream.public_id, playlist)


def test_a_worker_killed_before_its_notes_loses_nothing(
    pipeline_app, db, redis, bucket, live_stream, monkeypatch
):
    """A pass killed after its segments were uploaded and recorded but before
    it noted them: the next pass finds them in the database, the playlist
    names every recorded segment and nothing missing, and the pass after
    that is back on its notes. Notes of another stream's broadcast are not
    taken for this one's."""
    stream, broadcast, hls = live_stream
    for number in (1, 2, 3):
        hls.add_segment(number)
    hls.write_playlist([1, 2, 3])

    def killed(*args):
        raise RuntimeError("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(live, "_write_notes", killed)
        with pytest.raises(RuntimeError):
            jobs.sync_stream(stream.public_id)
    assert [n for n, _ in _rows(db, broadcast.id)] == [1, 2, 3]
    assert hls.local_names() == []
    # A stale note: segment 4 of a broadcast that is not this stream's.
    redis.hset(Keys.recorded(stream.public_id), "4", f"[{broadcast.id + 1000},2.0,false,null]")
    hls.add_segment(5)
    hls.write_playlist([1, 2, 3, 4, 5])

    with _window_queries(db) as asked:
        jobs.sync_stream(stream.public_id)

    playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in (1, 2, 3)]
    _assert_every_uri_exists(bucket, stream.public_id, playlist)
    assert len(asked) == 1

    hls.add_segment(4)
    hls.add_segment(6)
    hls.write_playlist([2, 3, 4, 5, 6])
    with _window_queries(db) as asked:
        jobs.sync_stream(stream.public_id)

    playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in (2, 3, 4, 5, 6)]
    _assert_every_uri_exists(bucket, stream.public_id, playlist)
    assert asked == []
    assert sorted(redis.hkeys(Keys.recorded(stream.public_id))) == [b"2", b"3", b"4", b"5", b"6"]


def test_unknown_stream_files_are_left_alone(pipeline_app, db, ts_segments, tmp_path):
    """Files of a stream the studio does not know are neither uploaded nor deleted."""
    path = tmp_path / "hls" / "live" / "nosuchstream-1.ts"
    path.write_bytes(ts_segments[0].read_bytes())

    result = jobs.sync_stream("nosuchstream")

    assert result["orphans"] == 1 and result["uploaded"] == 0
    assert path.exists()


@pytest.mark.parametrize("name", ["../etc", "a b", "", "x" * 65, "name.m3u8"])
def test_invalid_stream_names_are_refused(pipeline_app, db, name):
    """Stream names become file names: anything but [A-Za-z0-9_] is refused."""
    with pytest.raises(ValueError):
        jobs.sync_stream(name)


@contextmanager
def _statements(db):
    """Every statement sent to the database meanwhile (COMMIT included)."""
    sent: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    def committed(conn):
        sent.append("COMMIT")

    engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    event.listen(engine, "commit", committed)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        event.remove(engine, "commit", committed)


def test_a_group_of_streams_shares_one_query_and_one_commit(
    pipeline_app, db, redis, bucket, make_live_stream
):
    """Streams drained together are read in one query, their segments
    recorded in one statement and one commit, and each gets its own objects
    and playlist; an unknown stream in the group is left alone."""
    live = [make_live_stream() for _ in range(3)]
    for stream, _, hls in live:
        hls.add_segment(1)
        hls.add_segment(2)
        hls.write_playlist([1, 2])
        redis.set(Keys.dirty(stream.public_id), 1)
    redis.set(Keys.dirty("nobody_here"), 1)
    names = [stream.public_id for stream, _, _ in live] + ["nobody_here"]

    with _statements(db) as sent:
        result = sync.drain(pipeline_app, redis, names)

    assert result.uploaded == 6 and result.failed == 0
    reads = [s for s in sent if "FROM streams" in s and "LATERAL" in s]
    inserts = [s for s in sent if s.startswith("INSERT INTO segments")]
    assert len(reads) == 1 and len(inserts) == 1 and sent.count("COMMIT") == 1
    for stream, broadcast, hls in live:
        assert [n for n, _ in _rows(db, broadcast.id)] == [1, 2]
        playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
        assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in (1, 2)]
        assert hls.local_names() == []
        assert redis.get(Keys.lock(stream.public_id)) is None
    assert redis.get(Keys.dirty("nobody_here")) is None


def test_a_failed_upload_in_a_group_keeps_every_stream_whole(
    pipeline_app, db, redis, bucket, make_live_stream
):
    """When one upload of a group fails, what was not uploaded stays on disk
    and out of its stream's playlist; every playlist names only objects in
    the bucket, and the next pass completes them all."""
    live = [make_live_stream() for _ in range(2)]
    for stream, _, hls in live:
        for number in (1, 2, 3):
            hls.add_segment(number)
        hls.write_playlist([1, 2, 3])
        redis.set(Keys.dirty(stream.public_id), 1)
    stream, broadcast, _ = live[1]
    blocked = layout.segment(stream.public_id, broadcast.id, 2)
    bucket.put(blocked, b"other content")  # the immutable upload of 2 conflicts
    names = [stream.public_id for stream, _, _ in live]

    first = sync.drain(pipeline_app, redis, names)

    assert first.failed == 1
    for stream, _, _ in live:
        playlist = bucket.get(layout.live_playlist(stream.public_id))
        if playlist[0] == 200:
            _assert_every_uri_exists(bucket, stream.public_id, playlist[2].decode())
    from studio.storage import gcs

    gcs.get_storage(pipeline_app.config).bucket.blob(blocked).delete()
    for stream, _, hls in live:
        for name in hls.local_names():
            hls.add_segment(int(name.removesuffix(".ts").rsplit("-", 1)[1]))  # fresh mtime
        redis.set(Keys.dirty(stream.public_id), 1)
    second = sync.drain(pipeline_app, redis, names)

    assert second.failed == 0
    for stream, broadcast, hls in live:
        assert [n for n, _ in _rows(db, broadcast.id)] == [1, 2, 3]
        playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
        assert _uris(playlist) == [f"{broadcast.id}/{n}.ts" for n in (1, 2, 3)]
        assert hls.local_names() == []


def test_one_streams_failure_after_its_uploads_is_not_its_groups(
    pipeline_app, db, redis, bucket, make_live_stream, caplog
):
    """The first stream of a group cannot finish its pass (a leftover
    fragment it cannot delete: a directory); the pass still ends without
    an error, the other stream is finished (its own leftover deleted), and
    both have their segments and playlists in the bucket."""
    live = [make_live_stream() for _ in range(2)]
    stale = time.time() - 600
    leftovers = []
    for stream, _, hls in live:
        hls.add_segment(1)
        hls.write_playlist([1])
        redis.set(Keys.dirty(stream.public_id), 1)
        leftovers.append(hls.live / f"{stream.public_id}-9.ts.tmp")
    leftovers[0].mkdir()
    (leftovers[0] / "x").write_bytes(b"")
    leftovers[1].write_bytes(b"half a fragment")
    for path in leftovers:
        os.utime(path, (stale, stale))

    result = sync.drain(pipeline_app, redis, [stream.public_id for stream, _, _ in live])

    assert result.uploaded == 2
    assert leftovers[0].is_dir() and not leftovers[1].exists()
    assert f"finishing the pass of stream {live[0][0].public_id} failed" in caplog.text
    for stream, broadcast, _ in live:
        playlist = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
        assert _uris(playlist) == [f"{broadcast.id}/1.ts"]
        assert redis.get(Keys.lock(stream.public_id)) is None
