"""Ingest health over the last ten minutes, per live stream, with warnings a
creator understands.

Two sources, both already there: what the media server sees of the
publisher (bitrate, frame rate, whether audio arrives), sampled by the
reconciler on each pass and kept in Redis (a capped list per stream, gone
ten minutes after the last sample); and the lengths of the stream's recent
segments, from the database. The engine cuts a segment only at a keyframe,
so a segment longer than the fragment length means the encoder's keyframes
are that far apart: the one keyframe fact both engines reveal.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from studio.models import Broadcast, Segment

WINDOW = 600  # seconds of history
MAX_SAMPLES = 240  # a sample every 2.5 s at most is plenty for a small chart
PREFIX = "studio:ingest-history:"


@dataclass(frozen=True)
class Sample:
    """What the engine saw of a publisher at one moment."""

    at: float  # unix time
    kbps: int | None
    fps: float | None
    audio: bool
    bytes_in: int | None = None


def _key(public_id: str) -> str:
    return PREFIX + public_id


def measured_kbps(
    bytes_in: int | None,
    at: float,
    before: tuple[int | None, float] | None,
    engine_kbps: int | None,
) -> int | None:
    """A publisher's inbound bitrate at `at`: measured from the bytes received
    since `before` (bytes, time) when both have a count. The engine's own
    figure is an average over 10-30 s that reads 0 for the first seconds of a
    healthy broadcast, so with a byte count but nothing to measure against
    the rate is unknown (None), never a false 0."""
    if bytes_in is None:
        return engine_kbps
    if before is not None and before[0] is not None and at > before[1] and bytes_in >= before[0]:
        return round((bytes_in - before[0]) * 8 / 1000 / (at - before[1]))
    return engine_kbps or None


def record(redis: Redis, public_id: str, sample: Sample) -> None:
    """Add a sample, its rate measured against the previous one (`measured_kbps`)."""
    key = _key(public_id)
    previous = redis.lindex(key, 0) if sample.bytes_in is not None else None
    before = json.loads(previous) if previous else None
    kbps = measured_kbps(
        sample.bytes_in, sample.at, before and (before.get("bytes_in"), before["at"]), sample.kbps
    )
    row = json.dumps(
        {
            "at": round(sample.at, 3),
            "kbps": kbps,
            "fps": sample.fps,
            "audio": sample.audio,
            "bytes_in": sample.bytes_in,
        }
    )
    with redis.pipeline(transaction=False) as pipe:
        pipe.lpush(key, row)
        pipe.ltrim(key, 0, MAX_SAMPLES - 1)
        pipe.expire(key, WINDOW + 60)
        pipe.execute()


def samples(redis: Redis, public_id: str, now: float) -> list[dict]:
    """The last ten minutes of samples, oldest first."""
    rows = [json.loads(raw) for raw in redis.lrange(_key(public_id), 0, MAX_SAMPLES - 1)]
    kept = [row for row in rows if now - row["at"] <= WINDOW]
    for row in kept:
        row.pop("bytes_in", None)
    return list(reversed(kept))


def segment_lengths(session: Session, stream_id: int, now: float) -> list[dict]:
    """Start time and length of the stream's segments of the last ten
    minutes, oldest first."""
    since = datetime.fromtimestamp(now - WINDOW, tz=UTC)
    rows = session.execute(
        select(Segment.started_at, Segment.duration)
        .join(Broadcast, Broadcast.id == Segment.broadcast_id)
        .where(Broadcast.stream_id == stream_id, Segment.started_at >= since)
        .order_by(Segment.started_at)
    ).all()
    return [{"at": started.timestamp(), "seconds": duration} for started, duration in rows]


def warnings(history: list[dict], segments: list[dict], fragment: float) -> list[str]:
    """What a creator should act on, in words (empty when all is well)."""
    found = []
    recent = [segment["seconds"] for segment in segments[-5:]]
    if len(recent) >= 3 and statistics.median(recent) > fragment * 1.5:
        every = statistics.median(recent)
        found.append(
            f"Keyframes arrive only every {every:.0f} s, but this studio cuts {fragment:g} s "
            f"segments: viewers start later and fall further behind. Set the encoder's "
            f"keyframe interval to {fragment:g} s (OBS: Settings → Output → Keyframe Interval)."
        )
    rates = [row["kbps"] for row in history if row.get("kbps")]
    if len(rates) >= 4:
        usual = statistics.median(rates[:-1])
        last = history[-1].get("kbps") or 0
        if usual >= 200 and last < usual * 0.5:
            found.append(
                f"The bitrate fell from about {usual:.0f} to {last:.0f} kbit/s: the upload "
                "may be congested. Lower the encoder's bitrate or check the network."
            )
    if len(history) >= 2 and not any(row.get("audio") for row in history[-2:]):
        found.append(
            "No audio is reaching the studio: check the microphone or the encoder's audio track."
        )
    return found


def report(
    session: Session,
    redis: Redis,
    stream_id: int,
    public_id: str,
    fragment: float,
    now: float | None = None,
) -> dict:
    """Everything the health chart shows: samples, segment lengths, warnings."""
    now = datetime.now(UTC).timestamp() if now is None else now
    history = samples(redis, public_id, now)
    segments = segment_lengths(session, stream_id, now)
    return {
        "window": WINDOW,
        "now": now,
        "fragment": fragment,
        "samples": history,
        "segments": segments,
        "warnings": warnings(history, segments, fragment),
    }
