"""Thumbnails: while a stream is live, a frame of its latest uploaded segment
becomes the stream's live thumbnail (`live/{id}/thumbnail.jpg`, cached 10 s)
about every 10 s; the first one of each broadcast is also kept as that
broadcast's thumbnail (`live/{id}/{broadcast}/thumbnail.jpg`, immutable),
the poster of its replay.

The sync pass makes them (`cut_from_pass`, `start_writing`): at most one
per broadcast every THUMBNAIL_INTERVAL seconds (a Redis key,
`studio.media.pipeline.claim_thumbnail`), cut from the latest segment it
has just uploaded, read before the local file is deleted, decoded and
uploaded on the pass's upload threads while it writes its playlist: no job,
no download. The pass holds the stream's sync lock, so the objects land
under the prefix of the stream's visibility as the move job leaves it. The
images are static objects on the CDN: viewers never reach the web tier for
them.
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import redis
from av.codec.context import Flags

from studio.core import writes
from studio.extensions import db
from studio.media import pipeline
from studio.models import Broadcast, Stream
from studio.storage import gcs, layout
from workers.pipeline import mpegts

log = logging.getLogger(__name__)

WIDTH = 640  # pixels; enough for a card, a poster and a link preview
QUALITY = 5  # JPEG quantizer scale (ffmpeg's -q:v), 2 best .. 31 worst
GOLDEN = 0.6180339887498949  # spreads consecutive ids evenly over an interval
QP2LAMBDA = 118  # FFmpeg's FF_QP2LAMBDA: global_quality is a quantizer in lambda units


class ThumbnailError(Exception):
    """No frame could be cut from the segment (RQ retries the job)."""


def frame_jpeg(video: bytes) -> bytes:
    """The first keyframe of an MPEG-TS segment as a JPEG at most WIDTH wide.

    Decoded in this process with PyAV (FFmpeg's libraries): only keyframes,
    on one thread. The video track's access units are handed to its decoder
    straight from the segment (`mpegts.pes_payloads`): opening the segment
    as a container would first probe every track, decoding frames to do so,
    which cost twice the keyframe's own decoding. A segment whose video the
    decoder cannot start from that way is opened as a container. Raises
    ThumbnailError if the segment holds no decodable picture.
    """
    try:
        frame = _first_keyframe(video)
        if frame is None:
            frame = _first_keyframe_of_container(video)
        return _encode_jpeg(frame)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise ThumbnailError(f"no picture in the segment: {exc}") from exc


def _first_keyframe(video: bytes) -> av.VideoFrame | None:
    """The first keyframe decoded from the video track's elementary stream,
    or None (no track of a known codec, no keyframe decoded)."""
    track = mpegts.video_track(video)
    if track is None:
        return None
    decoder = av.CodecContext.create(track.decoder, "r")
    decoder.thread_type = "NONE"
    decoder.skip_frame = "NONKEY"
    for access_unit in mpegts.pes_payloads(video, track.pid):
        if not access_unit:
            continue
        try:
            frames = decoder.decode(av.Packet(access_unit))
            if not frames and _holds_idr(track.decoder, access_unit):
                # A decoder that reorders frames holds it back until the
                # next ones: ask for it now instead of reading the segment on.
                frames = decoder.decode(None)
        except av.FFmpegError:
            continue  # e.g. the end of the previous GOP, before any parameter set
        if frames:
            return frames[0]
    try:
        frames = decoder.decode(None)  # what the decoder still holds back
    except av.FFmpegError:
        return None
    return frames[0] if frames else None


def _holds_idr(decoder: str, access_unit: bytes) -> bool:
    """Whether an H.264 or HEVC access unit holds an IDR picture (NAL unit
    types 5; 16-21): its start codes never occur inside a NAL unit."""
    at = access_unit.find(b"\x00\x00\x01")
    while at != -1 and at + 3 < len(access_unit):
        header = access_unit[at + 3]
        if decoder == "h264" and header & 0x1F == 5:
            return True
        if decoder == "hevc" and 16 <= (header >> 1) & 0x3F <= 21:
            return True
        at = access_unit.find(b"\x00\x00\x01", at + 3)
    return False


def _first_keyframe_of_container(video: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(video), format="mpegts") as container:
        if not container.streams.video:
            raise ThumbnailError("the segment has no video track")
        track = container.streams.video[0]
        track.thread_type = "NONE"
        track.codec_context.skip_frame = "NONKEY"
        frame = next(container.decode(track), None)
        if frame is None:
            raise ThumbnailError("the segment has no keyframe")
        return frame


def _encode_jpeg(frame: av.VideoFrame) -> bytes:
    """`frame` scaled to at most WIDTH wide (even height), as a JPEG."""
    width = min(WIDTH, frame.width)
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.flags |= Flags.qscale
    encoder.global_quality = QUALITY * QP2LAMBDA
    packets = encoder.encode(picture) + encoder.encode(None)
    jpeg = b"".join(bytes(packet) for packet in packets)
    if not jpeg.startswith(b"\xff\xd8"):
        raise ThumbnailError("the encoder made no JPEG")
    return jpeg


@dataclass
class Frame:
    """A segment's bytes read during a sync pass (before its local file is
    deleted), to be cut and written while the pass writes its playlist."""

    broadcast_id: int
    sequence: int
    video: bytes


def wanted(broadcasts: list[Broadcast], now: datetime | None = None) -> set[int]:
    """The broadcasts a sync pass may cut a frame of: live ones, and ended
    ones without a thumbnail yet. A live broadcast's first frame waits for
    its `first_delay` after the start. Read before the pass commits (after
    it the rows would be loaded again)."""
    now = now or datetime.now(UTC)
    return {
        b.id
        for b in broadcasts
        if (b.ended_at is None or b.thumbnail_at is None)
        and not (
            b.ended_at is None
            and b.thumbnail_at is None
            and now < b.started_at + timedelta(seconds=first_delay(b.id))
        )
    }


def first_delay(broadcast_id: int) -> float:
    """Seconds after its start before a live broadcast's first frame, spread
    over THUMBNAIL_INTERVAL by its id (golden-ratio steps): streams that
    start together (an engine restarted, a simulated load) do not all cut
    a frame in the same pass, and their later frames, THUMBNAIL_INTERVAL
    apart, stay spread."""
    return (broadcast_id * GOLDEN) % 1.0 * pipeline.THUMBNAIL_INTERVAL


def cut_from_pass(
    connection: redis.Redis, wanted: set[int], uploaded: list[tuple[int, int, Path]]
) -> list[Frame]:
    """Frames of the `wanted` broadcasts that got segments in this batch of
    a sync pass (`uploaded`: broadcast id, segment number, local file not yet
    deleted): at most one per broadcast every THUMBNAIL_INTERVAL seconds,
    from its latest segment.

    Only reads the file (the decoding waits for `start_writing`). Never
    raises for a thumbnail: a file gone or Redis down is logged and the
    segments' sync goes on; a later pass takes the next."""
    latest: dict[int, tuple[int, Path]] = {}
    for broadcast_id, number, path in uploaded:
        if broadcast_id in wanted and number > latest.get(broadcast_id, (-1, path))[0]:
            latest[broadcast_id] = (number, path)
    frames = []
    for broadcast_id, (number, path) in latest.items():
        try:
            if not pipeline.claim_thumbnail(connection, broadcast_id):
                continue
        except redis.RedisError:
            log.warning("no thumbnail of broadcast %s this pass (Redis down)", broadcast_id)
            return frames
        try:
            frames.append(Frame(broadcast_id, number, path.read_bytes()))
        except OSError as exc:
            log.warning("no thumbnail from segment %s: %s", path.name, exc)
    return frames


def start_writing(
    storage: gcs.Storage, pool: Executor, stream: Stream, broadcasts: list[Broadcast], frames
) -> list[tuple[Broadcast, Future]]:
    """Cut the pass's frames into JPEGs and upload them on `pool` (the
    stream's live thumbnail while the broadcast is live; the broadcast's own
    if it has none yet; an ended broadcast's frame never replaces a newer
    one's), while the pass writes its playlist; `finish_writing` records
    them. The caller holds the stream's sync lock. Reads the rows as the
    pass read them (no query)."""
    by_id = {b.id: b for b in broadcasts}
    started = []
    for frame in frames:
        broadcast = by_id.get(frame.broadcast_id)
        if broadcast is None:
            continue
        live = None
        if broadcast.ended_at is None:
            live = layout.live_thumbnail(stream.public_id, stream.private)
        own = None
        if broadcast.thumbnail_at is None:
            own = layout.broadcast_thumbnail(stream.public_id, broadcast.id, stream.private)
        future = pool.submit(_cut_and_write, storage, frame, live, own)
        started.append((broadcast, future))
    return started


def _cut_and_write(storage: gcs.Storage, frame: Frame, live: str | None, own: str | None):
    """The frame as a JPEG in the live and/or the broadcast's thumbnail.
    Returns what was written; raises ThumbnailError, gcs.StorageError."""
    jpeg = frame_jpeg(frame.video)
    written = []
    if live is not None:
        storage.upload_live_thumbnail(live, jpeg)
        written.append("live")
    if own is not None:
        storage.upload_broadcast_thumbnail(own, jpeg)  # False: an earlier run's stays
        written.append("broadcast")
    return written


def finish_writing(stream: Stream, started: list[tuple[Broadcast, Future]]) -> list[str]:
    """Wait for `start_writing`'s thumbnails and record when each was
    written; commits. A segment without a picture or a bucket failure is
    logged: the next interval brings another frame. Returns what was
    written ("live", "broadcast")."""
    written, changes = [], []
    now = datetime.now(UTC)
    for broadcast, future in started:
        try:
            done = future.result()
        except ThumbnailError as exc:
            log.warning("no thumbnail of broadcast %s: %s", broadcast.id, exc)
            continue
        except gcs.StorageError as exc:
            log.error("thumbnail of broadcast %s not written: %s", broadcast.id, exc)
            continue
        if "live" in done:
            changes.append((stream, {"thumbnail_at": now}))
        if "broadcast" in done:
            changes.append((broadcast, {"thumbnail_at": now}))
        written += done
    if changes:
        # One statement (no ORM flush: it cost a pass more CPU than the upload).
        writes.update_rows(db.session, *changes)
    if written:
        db.session.commit()
    return written
