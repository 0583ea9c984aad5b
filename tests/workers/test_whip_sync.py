"""The sync of a browser-fed (WHIP) broadcast's HLS as SRS 5 writes it
(tests/fixtures/srs5/whip-hls): discontinuities only where timestamps jump,
and no first segment whose audio track is empty."""

from __future__ import annotations

import shutil

from sqlalchemy import select

from studio.models import Segment
from studio.storage import layout
from tests.conftest import FIXTURES
from tests.whip_hls import without_audio_samples
from workers import jobs
from workers.pipeline import continuity, mpegts

WHIP = FIXTURES / "whip-hls"


def _put(hls, number: int, data: bytes | None = None) -> None:
    path = hls.segment_path(number)
    if data is None:
        shutil.copyfile(WHIP / f"whipfix-{number}.ts", path)
    else:
        path.write_bytes(data)


def _playlist(hls, version: str) -> None:
    text = (WHIP / version).read_text().replace("whipfix-", f"{hls.stream}-")
    (hls.live / f"{hls.stream}.m3u8").write_text(text)


def _rows(db, broadcast_id: int) -> list[tuple[int, bool]]:
    db.session.expire_all()
    query = select(Segment).where(Segment.broadcast_id == broadcast_id).order_by(Segment.sequence)
    return [(s.sequence, s.discontinuity) for s in db.session.scalars(query)]


def _live_playlist(bucket, stream) -> str:
    status, _, body = bucket.get(layout.live_playlist(stream.public_id))
    assert status == 200
    return body.decode()


def test_continuous_timestamps_lose_the_engines_discontinuities(
    pipeline_app, db, bucket, live_stream
):
    """SRS tags segments 2..5 as discontinuities although their timestamps
    run on: the bucket's live playlist has none, so a player keeps the
    parameter sets the third segment's first frames need."""
    stream, broadcast, hls = live_stream
    for number in range(0, 3):
        _put(hls, number)
    _playlist(hls, "playlist-03-t16.52.m3u8")
    jobs.sync_stream(stream.public_id)
    # A later pass: the earlier segments are gone from disk.
    for number in range(3, 6):
        _put(hls, number)
    _playlist(hls, "playlist-06-t22.62.m3u8")
    jobs.sync_stream(stream.public_id)

    assert "#EXT-X-DISCONTINUITY" in (WHIP / "playlist-06-t22.62.m3u8").read_text()
    playlist = _live_playlist(bucket, stream)
    assert "#EXT-X-DISCONTINUITY" not in playlist, playlist
    assert [line for line in playlist.splitlines() if line.endswith(".ts")] == [
        f"{broadcast.id}/{n}.ts" for n in range(1, 6)
    ]
    # The first keeps its flag: nothing before it to continue.
    assert _rows(db, broadcast.id) == [(0, True)] + [(n, False) for n in range(1, 6)]


def test_a_timestamp_jump_keeps_its_discontinuity(
    pipeline_app, db, bucket, live_stream, ts_segments
):
    """A flagged segment whose timestamps do not follow the previous one's
    (another encoder's clock) keeps its discontinuity."""
    stream, broadcast, hls = live_stream
    _put(hls, 0)
    _put(hls, 1)
    _put(hls, 2, ts_segments[3].read_bytes())
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-TARGETDURATION:5",
        "#EXT-X-DISCONTINUITY",
        "#EXTINF:3.951,",
        f"{hls.stream}-0.ts",
        "#EXT-X-DISCONTINUITY",
        "#EXTINF:4.217,",
        f"{hls.stream}-1.ts",
        "#EXT-X-DISCONTINUITY",
        "#EXTINF:2.000,",
        f"{hls.stream}-2.ts",
    ]
    (hls.live / f"{hls.stream}.m3u8").write_text("\n".join(lines) + "\n")

    jobs.sync_stream(stream.public_id)

    assert _rows(db, broadcast.id) == [(0, True), (1, False), (2, True)]
    playlist = _live_playlist(bucket, stream).splitlines()
    assert playlist.count("#EXT-X-DISCONTINUITY") == 1, playlist  # none before the first
    assert "#EXT-X-DISCONTINUITY" in _tags_before(playlist, f"{broadcast.id}/2.ts")
    assert "#EXT-X-DISCONTINUITY" not in _tags_before(playlist, f"{broadcast.id}/1.ts")


def _tags_before(lines: list[str], uri: str) -> list[str]:
    """The tag lines between the segment before `uri` and `uri`."""
    tags, index = [], lines.index(uri) - 1
    while index >= 0 and lines[index].startswith("#"):
        tags.append(lines[index])
        index -= 1
    return tags


def test_a_first_segment_without_audio_samples_is_left_out(pipeline_app, db, bucket, live_stream):
    """The broadcast's first segment declares AAC but carries none: it waits
    until the next segment is complete, then is dropped (it would make
    hls.js build a video-only player); the broadcast starts at segment 1."""
    stream, broadcast, hls = live_stream
    silent = without_audio_samples((WHIP / "whipfix-0.ts").read_bytes())
    assert mpegts.tracks(silent) == mpegts.Tracks(audio_declared=True, audio_samples=False)
    _put(hls, 0, silent)
    _playlist(hls, "playlist-01-t8.44.m3u8")

    jobs.sync_stream(stream.public_id)
    assert _rows(db, broadcast.id) == []  # undecided until segment 1 is there
    assert hls.local_names() == [f"{hls.stream}-0.ts"]

    _put(hls, 1)
    _playlist(hls, "playlist-02-t12.62.m3u8")
    jobs.sync_stream(stream.public_id)

    assert [number for number, _ in _rows(db, broadcast.id)] == [1]
    assert hls.local_names() == []
    assert bucket.get(layout.segment(stream.public_id, broadcast.id, 0))[0] == 404
    playlist = _live_playlist(bucket, stream)
    assert "#EXT-X-MEDIA-SEQUENCE:1\n" in playlist
    assert [line for line in playlist.splitlines() if line.endswith(".ts")] == [
        f"{broadcast.id}/1.ts"
    ]


def test_a_later_segment_without_audio_samples_is_kept(pipeline_app, db, bucket, live_stream):
    """Only the start matters: once the player has its audio track, a
    segment without audio samples is uploaded like any other."""
    stream, broadcast, hls = live_stream
    _put(hls, 0)
    _put(hls, 1, without_audio_samples((WHIP / "whipfix-1.ts").read_bytes()))
    _put(hls, 2)
    _playlist(hls, "playlist-03-t16.52.m3u8")

    jobs.sync_stream(stream.public_id)

    assert [number for number, _ in _rows(db, broadcast.id)] == [0, 1, 2]


def test_tracks_and_continuity_of_the_recording():
    """Every recorded segment declares and carries audio, and each one's
    timestamps continue where the previous one (by its EXTINF) ended."""
    extinf = [3.951, 4.217, 3.883, 2.000, 2.000, 2.099, 3.951, 2.003]
    ranges = [mpegts.read_range(WHIP / f"whipfix-{n}.ts") for n in range(9)]
    for number in range(9):
        found = mpegts.read_tracks(WHIP / f"whipfix-{number}.ts")
        assert found == mpegts.Tracks(audio_declared=True, audio_samples=True)
    for number in range(1, 9):
        previous = ranges[number - 1]
        first = ranges[number].first
        assert mpegts.continues(previous.first, extinf[number - 1], first)
        assert not mpegts.continues(previous.first, extinf[number - 1] + 5, first)


def test_first_timestamp_read_from_the_start_is_the_whole_scans():
    """The first timestamp the continuity check reads (stopping at the first
    video one) is the one a scan of the whole segment finds, also for a
    segment whose audio packets come first or that has no video."""
    for number in range(9):
        data = (WHIP / f"whipfix-{number}.ts").read_bytes()
        assert mpegts.first_pts(data) == mpegts.pts_range(data).first
    video_first = (WHIP / "whipfix-0.ts").read_bytes()
    assert (
        mpegts.first_pts(_only_audio(video_first))
        == mpegts.pts_range(_only_audio(video_first)).first
    )
    assert mpegts.first_pts(b"") is None


def _only_audio(data: bytes) -> bytes:
    """`data` without its packets that start a video PES."""
    packets = [data[at : at + mpegts.PACKET] for at in range(0, len(data), mpegts.PACKET)]
    return b"".join(p for p in packets if b"\x00\x00\x01\xe0" not in p[4:40])


def test_a_long_broadcast_keeps_only_its_latest_segment_starts(redis):
    """Segment starts are remembered for the next pass's comparison; a long
    broadcast keeps only its latest ones instead of one field a segment."""
    for number in range(200):
        pipe = redis.pipeline()
        continuity.remember(pipe, "abc", {number: (number * 180_000, 2.0)})
        pipe.execute()

    kept = sorted(int(field) for field in redis.hkeys(continuity._key("abc")))
    assert kept == list(range(200 - continuity.REMEMBER_SEGMENTS, 200))
    assert continuity._remembered(redis, "abc", 199) == (199 * 180_000, 2.0)
    assert continuity.discontinuity(redis, "abc", 200, 200 * 180_000, flagged=True) is False
