"""The relay between an ingest socket and ffmpeg, with real child processes
standing in for ffmpeg (`cat` reads everything, `sleep` reads nothing)."""

from __future__ import annotations

import os
import time

import pytest

from studio.media.relay import FfmpegRelay, RelayOverflow, ffmpeg_argv, publish_url
from tests.polling import poll


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_everything_fed_reaches_the_child_and_close_reaps_it():
    """A child that keeps up gets every byte; close() ends and reaps it."""
    relay = FfmpegRelay(["cat"], max_buffer_bytes=1 << 20)
    for _ in range(50):
        relay.feed(b"x" * 10_000)
    assert relay.close() == 0
    assert relay.bytes_written == 500_000
    assert not alive(relay.pid)


def test_a_child_that_stops_reading_cannot_grow_memory():
    """When the child reads nothing, the buffer stops at its bound, the relay
    reports the stall, and close() kills the child instead of waiting."""
    relay = FfmpegRelay(["sleep", "60"], max_buffer_bytes=256 * 1024, write_timeout=0.3)
    fed = 0
    with pytest.raises(RelayOverflow):
        for _ in range(1000):  # 16 MB would be sent without the bound
            relay.feed(b"x" * 16_384)
            fed += 16_384
    assert relay.buffered_bytes <= 256 * 1024
    assert fed < 1024 * 1024  # the pipe (64 KB) plus the buffer, not more
    poll(relay.stalled, timeout=5)
    assert relay.stalled()
    started = time.monotonic()
    relay.close(grace=1.0)
    assert time.monotonic() - started < 5
    assert not alive(relay.pid)


def test_stderr_tail_never_contains_the_key():
    """ffmpeg prints its output URL on errors; the key is masked."""
    relay = FfmpegRelay(
        ["sh", "-c", "echo 'rtmp://h/live/s?secret=k3y-Secret: Input/output error' >&2"],
        redact=["k3y-Secret"],
    )
    relay.close()
    assert relay.stderr_tail() == "rtmp://h/live/s?secret=***: Input/output error"


def test_publish_url_marks_the_socket_ingest():
    """nginx-rtmp hands query arguments to on_publish as form fields."""
    url = publish_url("rtmp://127.0.0.1:1935/live/", "abc", "t/k+t")
    assert url == "rtmp://127.0.0.1:1935/live/abc?ticket=t%2Fk%2Bt&ingest=websocket"
    argv = ffmpeg_argv(url, "matroska")
    assert argv[argv.index("-i") - 2 : argv.index("-i") + 2] == ["-f", "matroska", "-i", "pipe:0"]
    assert argv[-1] == url
    assert argv[argv.index("-c:v") + 1] == "copy"
