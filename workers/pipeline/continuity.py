"""Where a player may start, and where it must reset.

SRS 5 fed over WHIP (rtc_to_rtmp) writes HLS that hls.js handles badly for
a viewer who starts early (srs5-fixtures/whip-hls):

- `#EXT-X-DISCONTINUITY` before nearly every segment although the timestamps
  run on. A player resets its demuxer at each one, so a segment that begins
  with the end of the previous segment's GOP (no SPS/PPS until its own
  keyframe) loses those frames: a hole in the video, a stall. A segment whose
  first timestamp continues the previous one keeps no discontinuity; a real
  jump keeps the engine's tag. Resolution changes need no discontinuity:
  the parameter sets travel in-band.
- A first segment that declares an AAC track but carries no audio sample
  yet: hls.js then builds a video-only player and fails (bufferAppendError)
  when the next segment brings audio. Such a segment at the very start of a
  broadcast is left out when the next one carries audio; the broadcast
  starts there (the few seconds lost were silent and at most one segment).
"""

from __future__ import annotations

import logging

import redis
from redis.client import Pipeline
from sqlalchemy import exists, select

from studio.extensions import db
from studio.models import Segment
from workers.pipeline import local_hls, mpegts

log = logging.getLogger(__name__)

# Where each uploaded segment started (its first timestamp) and its length:
# the next segment is compared against it, maybe in a later pass. Only the
# latest are kept (a pass compares its first segment with the one before),
# so a broadcast of many hours does not grow the hash one field a segment.
REMEMBER_SECONDS = 3600
REMEMBER_SEGMENTS = 32


def _key(stream: str) -> str:
    return f"studio:media:timestamps:{stream}"


def remember(pipe: Pipeline, stream: str, starts: dict[int, tuple[int, float]]) -> None:
    """Note where segments of `stream` started and how long they are
    ({number: (first timestamp, duration)}), queued on `pipe` (the pass's
    writes, sent in one round trip after its playlist: the stream's next
    pass cannot start before); the segment REMEMBER_SEGMENTS before each
    is forgotten."""
    if not starts:
        return
    key = _key(stream)
    pipe.hset(
        key, mapping={str(n): f"{first}:{duration}" for n, (first, duration) in starts.items()}
    )
    forgotten = {str(n - REMEMBER_SEGMENTS) for n in starts} - {str(n) for n in starts}
    pipe.hdel(key, *forgotten)
    pipe.expire(key, REMEMBER_SECONDS)


def _remembered(connection: redis.Redis, stream: str, number: int) -> tuple[int, float] | None:
    value = connection.hget(_key(stream), str(number))
    if not value:
        return None
    first, duration = value.decode().split(":")
    return int(first), float(duration)


def discontinuity(
    connection: redis.Redis,
    stream: str,
    number: int,
    first: int | None,
    flagged: bool,
    in_pass: dict[int, tuple[int, float]] | None = None,
) -> bool:
    """Whether segment `number` really starts a discontinuity: the engine
    flagged it and its timestamps (`first`: its first one) do not continue
    segment `number - 1`'s (from `in_pass`, the starts seen earlier in this
    pass, else as remembered). Unknown (no timestamps, previous segment not
    seen) keeps the flag."""
    if not flagged or first is None:
        return flagged
    previous = (in_pass or {}).get(number - 1) or _remembered(connection, stream, number - 1)
    if previous is None:
        return True
    return not mpegts.continues(previous[0], previous[1], first)


def silent_start(
    segment: local_hls.LocalSegment,
    data: bytes,
    on_disk: list[local_hls.LocalSegment],
    broadcast_id: int,
    publishing: bool,
    earlier_in_pass: bool = False,
) -> bool | None:
    """Whether `segment` is a broadcast's first and its audio track is
    declared but empty while the next segment carries audio (True: leave it
    out), False to upload it, None when that cannot be told until the next
    segment is on disk (the engine is still writing it). `data`: the
    segment's bytes. `earlier_in_pass`: an earlier segment of the broadcast
    is being uploaded with this one."""
    found = mpegts.tracks(data)
    if not found.audio_declared or found.audio_samples:
        return False
    if earlier_in_pass:
        return False
    earlier = db.session.scalar(
        select(
            exists().where(Segment.broadcast_id == broadcast_id, Segment.sequence < segment.number)
        )
    )
    if earlier:
        return False  # the player's audio track exists already
    following = next((s for s in on_disk if s.number == segment.number + 1), None)
    if following is None:
        return None if publishing else False
    try:
        carries_audio = mpegts.read_tracks(following.path).audio_samples
    except FileNotFoundError:
        return None if publishing else False
    if carries_audio:
        log.warning(
            "segment %s declares audio but has none: the broadcast starts at the next one",
            segment.path.name,
        )
    return carries_audio
