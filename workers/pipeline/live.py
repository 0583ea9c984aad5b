"""The live playlist in the bucket: the engine's window, rewritten to the
per-broadcast objects, naming only segments already uploaded.

Which segments of the window are in the bucket (`in_bucket`): those the
pass uploaded, and those recorded before, as the stream's previous pass
noted them in Redis (`Keys.recorded`: read with the pass's other facts,
written with its other notes, so no round trip of its own). A note is
written only after its segment's row was committed, so it never names a
segment missing from the bucket. A number of the window that is neither
noted nor uploaded nor still on disk means the notes are missing or stale
(Redis emptied, a worker killed between its commit and its notes): the
pass then asks the database, and notes what it found.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.client import Pipeline
from sqlalchemy import bindparam, select

from studio import metrics
from studio.extensions import db
from studio.media.pipeline import REPORTED_TTL, Keys
from studio.models import Segment
from studio.storage import layout
from workers.pipeline.playlists import PlaylistSegment, live_window, render_live

log = logging.getLogger(__name__)

# A stream idle this long has its notes dropped; its next pass asks the database.
NOTES_TTL = REPORTED_TTL
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class PlaylistUpload:
    """A live playlist to put in the bucket (`live_playlist`)."""

    stream: str  # public id
    object_name: str
    text: str
    digest: str
    mtime: float  # of the local playlist it was rewritten from


def live_playlist(
    app, stream, broadcasts, playlist, available, synced_digest, written
) -> PlaylistUpload | None:
    """The engine's window rewritten for the bucket, naming only the
    segments `available` ({number: PlaylistSegment} in the bucket:
    `in_bucket`); None if there is nothing to upload (an empty window, or
    the same digest as `synced_digest`, the last one uploaded: then that the
    bucket has this playlist is noted on the Redis pipeline `written`)."""
    numbers = [entry.number for entry in playlist.entries]
    window = live_window(numbers, available)
    by_id = {b.id: b for b in broadcasts}
    last = by_id.get(window[-1].broadcast_id) if window else None
    ended = (
        last is not None
        and last.ended_at is not None
        and not any(b.ended_at is None for b in broadcasts)
    )
    text = render_live(stream.public_id, window, float(app.config["HLS_FRAGMENT"]), ended)
    if text is None:
        return None
    digest = hashlib.sha256(text.encode()).hexdigest()
    if synced_digest == digest.encode():
        written.hset(Keys.playlist(stream.public_id), "mtime", playlist.mtime)  # the sweep can rest
        return None
    object_name = layout.live_playlist(stream.public_id, stream.private)
    return PlaylistUpload(stream.public_id, object_name, text, digest, playlist.mtime)


def playlist_uploaded(upload: PlaylistUpload, error, result, written, started: float) -> None:
    """Note what the bucket now has on the Redis pipeline `written` (the
    caller executes it), or log the failure (`error`). A failed playlist is
    not marked dirty again (that would spin while the bucket is down): the
    sweep sees the local playlist newer than the uploaded one."""
    if error is not None:
        result.failed += 1
        metrics.UPLOAD_FAILURES.labels("playlist").inc()
        log.error("live playlist of %s not uploaded: %s", upload.stream, error)
        return
    metrics.UPLOAD_LAG.labels("playlist").observe(max(0.0, started - upload.mtime))
    noted = {"digest": upload.digest, "mtime": upload.mtime}
    written.hset(Keys.playlist(upload.stream), mapping=noted)
    result.playlist_written = True


def in_bucket(
    written: Pipeline,
    public_id: str,
    broadcasts,
    numbers: list[int],
    uploaded: dict[int, PlaylistSegment],
    waiting: set[int],
    notes: dict[bytes, bytes],
) -> dict[int, PlaylistSegment]:
    """The segments among `numbers` (the engine's window) that are in the
    bucket: `uploaded` by this pass, else as `notes` (`Keys.recorded`, as
    read at the pass's start) say, or, if a number is neither noted nor
    uploaded nor `waiting` (still on disk), as the database says. Of two
    broadcasts' segments with one number the newest broadcast's wins
    (`broadcasts`: the pass's, newest first); one of this pass wins over
    an earlier one. What the next pass needs is queued on `written`.
    Raises database errors."""
    order = {b.id: i for i, b in enumerate(broadcasts)}  # 0 = newest
    recorded = _read_notes(notes, order)
    for segment in uploaded.values():
        _keep_newest(recorded, segment, order)
    if any(n not in recorded and n not in waiting for n in numbers):
        recorded = _segments_in_bucket(order, numbers)
        for segment in uploaded.values():
            _keep_newest(recorded, segment, order)
    _write_notes(written, public_id, numbers, recorded, notes)
    return {**recorded, **uploaded}


def _keep_newest(found: dict[int, PlaylistSegment], segment: PlaylistSegment, order) -> None:
    current = found.get(segment.number)
    if current is None or order[segment.broadcast_id] <= order[current.broadcast_id]:
        found[segment.number] = segment


def _note(segment: PlaylistSegment) -> bytes:
    started = segment.started_at
    # Whole microseconds, as the row holds them: no float rounding on the way.
    micros = None if started is None else (started - _EPOCH) // _MICROSECOND
    note = [segment.broadcast_id, segment.duration, segment.discontinuity, micros]
    return json.dumps(note, separators=(",", ":")).encode()


def _read_notes(notes: dict[bytes, bytes], order) -> dict[int, PlaylistSegment]:
    """The notes of the pass's broadcasts (others are stale: left out)."""
    recorded: dict[int, PlaylistSegment] = {}
    for field, value in notes.items():
        broadcast_id, duration, discontinuity, micros = json.loads(value)
        if broadcast_id in order:
            started = None if micros is None else _EPOCH + micros * _MICROSECOND
            number = int(field)
            recorded[number] = PlaylistSegment(
                number, duration, broadcast_id, discontinuity, started
            )
    return recorded


def _write_notes(written: Pipeline, public_id: str, numbers, recorded, notes) -> None:
    """Queue on `written` the notes of the window's recorded segments,
    only what changed; numbers that left the window are dropped."""
    wanted = {str(n).encode(): _note(recorded[n]) for n in numbers if n in recorded}
    changed = {field: note for field, note in wanted.items() if notes.get(field) != note}
    gone = [field for field in notes if field not in wanted]
    key = Keys.recorded(public_id)
    if gone:
        written.hdel(key, *gone)
    if changed:
        written.hset(key, mapping=changed)
        written.expire(key, NOTES_TTL)


# Built once (a pass runs it whenever its notes fall short): only the parameters change.
_IN_BUCKET = select(
    Segment.sequence,
    Segment.duration,
    Segment.broadcast_id,
    Segment.discontinuity,
    Segment.started_at,
).where(
    Segment.broadcast_id.in_(bindparam("broadcasts", expanding=True)),
    Segment.sequence.in_(bindparam("numbers", expanding=True)),
)


def _segments_in_bucket(order: dict[int, int], numbers) -> dict[int, PlaylistSegment]:
    """Recorded segments among `numbers` of the broadcasts `order` ({id:
    rank}, 0 = newest; the newest broadcast wins a number)."""
    if not numbers or not order:
        return {}
    rows = db.session.execute(_IN_BUCKET, {"broadcasts": list(order), "numbers": numbers}).all()
    found: dict[int, PlaylistSegment] = {}
    for sequence, duration, broadcast_id, discontinuity, started_at in rows:
        segment = PlaylistSegment(sequence, duration, broadcast_id, discontinuity, started_at)
        _keep_newest(found, segment, order)
    return found
