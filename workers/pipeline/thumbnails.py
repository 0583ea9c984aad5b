"""Thumbnails: while a stream is live, a frame of its latest uploaded segment
becomes the stream's live thumbnail (`live/{id}/thumbnail.jpg`, cached 10 s)
about every 10 s; the first one of each broadcast is also kept as that
broadcast's thumbnail (`live/{id}/{broadcast}/thumbnail.jpg`, immutable),
the poster of its replay.

Sync passes ask for one (`request_after_sync`); `studio.media.pipeline.
request_thumbnail` lets at most one job per broadcast through every
THUMBNAIL_INTERVAL seconds. The frame is cut from the segment in the bucket
(the local file is deleted once uploaded), so any worker can make it. The
images are static objects on the CDN: viewers never reach the web tier for them.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime

import redis
from flask import Flask
from sqlalchemy import select

from studio.extensions import db
from studio.media import pipeline
from studio.models import Broadcast, Segment
from studio.redis_client import get_redis
from studio.storage import gcs, layout

log = logging.getLogger(__name__)

WIDTH = 640  # pixels; enough for a card, a poster and a link preview
FFMPEG_TIMEOUT = 20  # seconds for one frame of one segment, on a busy machine


class ThumbnailError(Exception):
    """ffmpeg could not cut a frame from the segment (RQ retries the job)."""


def make_thumbnail(app: Flask, broadcast_id: int) -> dict:
    """Cut a JPEG from the broadcast's latest uploaded segment; write it
    as the stream's live thumbnail while the broadcast is live, and as the
    broadcast's own thumbnail if it has none yet. Records when each was written.

    Idempotent: a second run rewrites the live thumbnail and keeps the
    broadcast's first one. Raises ThumbnailError if ffmpeg fails and
    gcs.StorageError if the bucket does; RQ retries both.
    """
    broadcast = db.session.get(Broadcast, int(broadcast_id))
    if broadcast is None:
        return {"status": "missing"}
    segment = db.session.scalar(
        select(Segment)
        .where(Segment.broadcast_id == broadcast.id)
        .order_by(Segment.sequence.desc())
        .limit(1)
    )
    storage = gcs.get_storage(app.config)
    video = storage.read_bytes(segment.object_name) if segment else None
    if video is None:
        return {"status": "no segment"}
    jpeg = frame_jpeg(video, app.config.get("FFMPEG_BIN", "ffmpeg"))
    stream = broadcast.stream
    private = stream.private
    written = []
    now = datetime.now(UTC)
    # An ended broadcast's frame must not replace a newer broadcast's.
    if broadcast.ended_at is None:
        storage.upload_live_thumbnail(layout.live_thumbnail(stream.public_id, private), jpeg)
        stream.thumbnail_at = now
        written.append("live")
    if broadcast.thumbnail_at is None:
        name = layout.broadcast_thumbnail(stream.public_id, broadcast.id, private)
        storage.upload_broadcast_thumbnail(name, jpeg)  # False: an earlier run's stays
        broadcast.thumbnail_at = now
        written.append("broadcast")
    db.session.commit()
    pipeline.recheck_visibility(get_redis(app), stream, private)
    return {"status": "ok", "segment": segment.sequence, "written": written}


def frame_jpeg(video: bytes, ffmpeg: str = "ffmpeg") -> bytes:
    """The first keyframe of an MPEG-TS segment as a JPEG at most WIDTH wide.

    Only keyframes are decoded (a segment starts with one), on one thread:
    most of the ~0.1 s of CPU is ffmpeg's start-up. Raises ThumbnailError if
    ffmpeg fails, times out or yields nothing.
    """
    argv = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "1",
        "-skip_frame",
        "nokey",
        "-f",
        "mpegts",
        "-i",
        "pipe:0",
        "-an",
        "-frames:v",
        "1",
        "-vf",
        f"scale='min({WIDTH},iw)':-2",
        "-q:v",
        "5",
        "-f",
        "image2pipe",
        "-c:v",
        "mjpeg",
        "pipe:1",
    ]
    try:
        done = subprocess.run(argv, input=video, capture_output=True, timeout=FFMPEG_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise ThumbnailError(f"ffmpeg took longer than {FFMPEG_TIMEOUT}s") from exc
    except OSError as exc:
        raise ThumbnailError(f"ffmpeg could not run: {exc}") from exc
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        error = done.stderr.decode(errors="replace").strip()[-300:]
        raise ThumbnailError(f"ffmpeg made no picture (exit {done.returncode}): {error}")
    return done.stdout


def request_after_sync(app: Flask, broadcasts: list[Broadcast], uploaded: set[int]) -> None:
    """After a sync pass: ask for a thumbnail of every broadcast that got a
    segment and is live (or has none yet). Redis being down is logged: a
    later pass asks again."""
    wanted = [
        b.id
        for b in broadcasts
        if b.id in uploaded and (b.ended_at is None or b.thumbnail_at is None)
    ]
    if not wanted:
        return
    try:
        connection = get_redis(app)
        for broadcast_id in wanted:
            pipeline.request_thumbnail(connection, broadcast_id)
    except redis.RedisError:
        log.warning("could not queue thumbnails of broadcasts %s (Redis down)", wanted)
