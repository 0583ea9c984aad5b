"""#EXT-X-PROGRAM-DATE-TIME in the live and replay playlists, written by the
real sync and finalize jobs against fake-gcs-server."""

from __future__ import annotations

import time
from datetime import datetime

from studio.storage import layout
from studio.streams import service as streams
from workers import jobs

DURATIONS = {1: 2.0, 2: 2.0, 3: 1.5, 4: 2.0, 5: 2.5}


def _dated(playlist: str) -> list[tuple[datetime, float]]:
    """(program date-time, EXTINF) of every segment, in playlist order."""
    pairs: list[tuple[datetime, float]] = []
    moment: datetime | None = None
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            moment = datetime.fromisoformat(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            assert moment is not None, f"segment without a program date-time in:\n{playlist}"
            pairs.append((moment, float(line.split(":", 1)[1].rstrip(","))))
            moment = None
    return pairs


def _write_segments(hls, numbers: list[int], ends: dict[int, float]) -> None:
    for number in numbers:
        hls.add_segment(number, mtime=ends[number])


def _assert_consistent(pairs: list[tuple[datetime, float]], first_start: float) -> None:
    """Increasing, each starting where the previous one ended, the first
    where the engine began writing it."""
    assert abs(pairs[0][0].timestamp() - first_start) < 0.002
    for (start, duration), (following, _) in zip(pairs, pairs[1:], strict=False):
        assert following > start
        assert abs((following - start).total_seconds() - duration) < 0.002


def test_live_playlist_dates_every_segment_from_its_close_time(
    pipeline_app, db, bucket, live_stream
):
    """Each segment's date is when the engine closed its file minus its
    length; across two sync passes (the second reading the first's rows)
    the dates increase by exactly the segments' durations."""
    stream, broadcast, hls = live_stream
    begin = time.time() - 30
    ends, clock = {}, begin
    for number, duration in DURATIONS.items():
        clock += duration
        ends[number] = clock
    _write_segments(hls, [1, 2, 3], ends)
    hls.write_playlist([1, 2, 3], DURATIONS)
    jobs.sync_stream(stream.public_id)
    _write_segments(hls, [4, 5], ends)
    hls.write_playlist([1, 2, 3, 4, 5], DURATIONS)

    assert jobs.sync_stream(stream.public_id)["playlist_written"] is True

    status, _, body = bucket.get(layout.live_playlist(stream.public_id))
    assert status == 200
    pairs = _dated(body.decode())
    assert [d for _, d in pairs] == list(DURATIONS.values())
    _assert_consistent(pairs, begin)
    assert body.decode().endswith(".ts\n")  # the tag precedes, never trails, a segment


def test_replay_playlist_keeps_the_dates(pipeline_app, db, redis, bucket, live_stream):
    """The VOD playlist of an ended broadcast carries the same dates."""
    stream, broadcast, hls = live_stream
    begin = time.time() - 30
    ends, clock = {}, begin
    for number, duration in DURATIONS.items():
        clock += duration
        ends[number] = clock
    _write_segments(hls, list(DURATIONS), ends)
    hls.write_playlist(list(DURATIONS), DURATIONS)
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()

    jobs.finalize_broadcast(broadcast.id)

    status, _, body = bucket.get(layout.replay_playlist(stream.public_id, broadcast.id))
    assert status == 200
    pairs = _dated(body.decode())
    assert [d for _, d in pairs] == list(DURATIONS.values())
    _assert_consistent(pairs, begin)
