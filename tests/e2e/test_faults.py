"""Faults in the upload pipeline during a live ffmpeg publish into nginx-rtmp:
nothing is lost, nothing is out of order, the replay is complete."""

from __future__ import annotations

import re

from studio.storage import layout
from tests.polling import poll


def _local_segments(studio_stack, public_id: str) -> list[str]:
    return sorted(p.name for p in (studio_stack.hls_dir / "live").glob(f"{public_id}-*.ts"))


def _replay_ready(studio_stack, public_id: str):
    row = studio_stack.stream_row(public_id)
    broadcasts = row["broadcasts"]
    return row if broadcasts and broadcasts[-1]["replay_ready_at"] is not None else None


def test_worker_outage_during_a_live_stream_loses_nothing(studio_stack, ffmpeg_publisher):
    """Workers killed mid-stream and restarted later: every segment of the
    broadcast ends up in the bucket, in order, with no gap, and the replay
    lists them all (the local directory was the buffer meanwhile)."""
    _outage_during_a_live_stream(
        studio_stack,
        ffmpeg_publisher,
        stop=lambda: studio_stack.stop_workers(kill=True),
        start=studio_stack.start_workers,
    )


def test_bucket_outage_during_a_live_stream_loses_nothing(studio_stack, ffmpeg_publisher):
    """The bucket unreachable mid-stream for longer than an upload's retries
    (the failures are logged) and back later: nothing is lost or reordered,
    the replay is complete."""
    _outage_during_a_live_stream(
        studio_stack,
        ffmpeg_publisher,
        stop=studio_stack.stop_bucket,
        start=studio_stack.start_bucket,
        pile_up=8,
        seconds=34,
        # Down for longer than an upload's retries (RETRY_BUDGET): on a busy
        # machine segments may pile up faster than those run out.
        down_until=lambda: (
            "not uploaded, kept on disk for a retry" in studio_stack.log_text("rq-workers")
        ),
    )


def _outage_during_a_live_stream(
    studio_stack,
    ffmpeg_publisher,
    stop,
    start,
    pile_up: int = 4,
    seconds: int = 26,
    down_until=None,
) -> None:
    stream = studio_stack.create_stream(studio_stack.create_user())
    publisher = ffmpeg_publisher.start(stream.publish_url, seconds=seconds)
    live_playlist = layout.live_playlist(stream.public_id)
    assert poll(lambda: studio_stack.bucket_get(live_playlist)[0] == 200, 20, 0.2), (
        "the live playlist never reached the bucket"
    )

    stop()
    # Meanwhile, segments pile up on disk (nothing deleted).
    assert poll(lambda: len(_local_segments(studio_stack, stream.public_id)) >= pile_up, 30, 0.2)
    if down_until is not None:
        assert poll(down_until, 40, 0.5), studio_stack.log_text("rq-workers")[-3000:]
    start()

    assert publisher.wait(timeout=seconds + 30) == 0
    row = poll(lambda: _replay_ready(studio_stack, stream.public_id), 90, 0.5)
    assert row, f"no replay:\n{studio_stack.log_text('rq-workers')[-3000:]}"

    broadcast = row["broadcasts"][-1]
    numbers = [sequence for sequence, _, _ in broadcast["segments"]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    total = sum(duration for _, duration, _ in broadcast["segments"])
    assert abs(total - seconds) < 3, f"{total:.2f}s of media for a {seconds}s publish"
    for _, _, object_name in broadcast["segments"]:
        status, headers, body = studio_stack.bucket_get(object_name)
        assert status == 200, object_name
        assert headers["Content-Type"] == "video/mp2t"
        assert body[:1] == b"G"  # MPEG-TS sync byte
    assert _local_segments(studio_stack, stream.public_id) == []

    status, headers, body = studio_stack.edge_get(
        layout.replay_playlist(stream.public_id, broadcast["id"])
    )
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    text = body.decode()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-DISCONTINUITY" not in text
    assert re.findall(r"^(\d+)\.ts$", text, re.M) == [str(n) for n in numbers]
