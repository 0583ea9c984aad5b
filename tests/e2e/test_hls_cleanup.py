"""Nothing piles up in the HLS directory: after a real publish through
nginx-rtmp ends, the watcher, the RQ workers and the sync job leave the
stream's directory empty (segments, playlist, and a `.ts.tmp` an engine
killed mid-fragment left behind), with everything in the bucket."""

from __future__ import annotations

import os
import time

from studio.storage import layout
from tests.polling import wait_until
from workers.pipeline import local_hls


def test_ended_stream_leaves_no_local_file(studio_stack, ffmpeg_publisher):
    """Six seconds of ffmpeg through nginx-rtmp; once the broadcast ended and
    its files went quiet, the local directory holds nothing of the stream,
    and the bucket holds its playlist and segments."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email)
    live = studio_stack.hls_dir / "live"
    # What SRS leaves when it is killed while writing a fragment.
    abandoned = live / f"{stream.public_id}-999.ts.tmp"
    live.mkdir(parents=True, exist_ok=True)
    abandoned.write_bytes(b"\x47" * 188 * 10)
    stamp = time.time() - local_hls.leftover_age(2.0) - 1
    os.utime(abandoned, (stamp, stamp))

    process = ffmpeg_publisher.start(stream.publish_url, seconds=6)
    assert process.wait(timeout=60) == 0
    wait_until(
        lambda: studio_stack.stream_row(stream.public_id)["status"] == "ended", 30, "the end"
    )

    def stream_files() -> list[str]:
        return sorted(p.name for p in live.iterdir() if p.name.startswith(stream.public_id))

    # Up to the leftover age (the playlist must be quiet) plus a sweep and a job.
    wait_until(lambda: stream_files() == [], local_hls.leftover_age(2.0) + 60, "an empty dir")
    status, _, playlist = studio_stack.bucket_get(layout.live_playlist(stream.public_id))
    assert status == 200
    uris = [line for line in playlist.decode().splitlines() if line and line[0] != "#"]
    assert uris
    for uri in uris:
        assert studio_stack.bucket_get(f"{layout.stream_prefix(stream.public_id)}{uri}")[0] == 200
