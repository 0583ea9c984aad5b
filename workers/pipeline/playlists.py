"""The playlists the studio puts in the bucket.

Live: the engine's sliding window, with URIs rewritten to the per-broadcast
objects (relative to `live/{id}/index.m3u8`) and cut so that it names only
segments already in the bucket. Replay: every segment of one broadcast, VOD.
Both carry each segment's #EXT-X-PROGRAM-DATE-TIME when it is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from studio.storage import layout
from workers.pipeline.local_hls import target_duration


@dataclass(frozen=True)
class PlaylistSegment:
    """A segment in the bucket, as a playlist names it."""

    number: int  # the engine's sequence number (= HLS media sequence number)
    duration: float
    broadcast_id: int
    discontinuity: bool = False
    started_at: datetime | None = None  # wall clock of its first frame, if known


def program_date_time(moment: datetime) -> str:
    """The #EXT-X-PROGRAM-DATE-TIME tag (UTC, milliseconds, RFC 3339)."""
    stamp = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return f"#EXT-X-PROGRAM-DATE-TIME:{stamp.replace('+00:00', 'Z')}"


def relative_uri(public_id: str, broadcast_id: int, number: int) -> str:
    """A segment's URI relative to the live playlist's directory (`live/{id}/`)."""
    return layout.segment(public_id, broadcast_id, number).removeprefix(
        layout.stream_prefix(public_id)
    )


def live_window(numbers: list[int], available: dict[int, PlaylistSegment]) -> list[PlaylistSegment]:
    """The part of the engine's window that may be published.

    Leading entries not in the bucket are skipped (they leave the window
    soon); from the first available one, entries are kept while they are in
    the bucket and consecutive. A media sequence number may not be reused for
    another segment, so a hole cannot be skipped: the playlist stops before it
    until it is filled.
    """
    window: list[PlaylistSegment] = []
    for number in numbers:
        segment = available.get(number)
        if segment is None:
            if window:
                break
            continue
        if window and number != window[-1].number + 1:
            break
        window.append(segment)
    return window


def render_live(
    public_id: str,
    window: list[PlaylistSegment],
    fragment: float,
    ended: bool = False,
) -> str | None:
    """The live m3u8 for the bucket, or None for an empty window."""
    if not window:
        return None
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target_duration([s.duration for s in window], fragment)}",
        f"#EXT-X-MEDIA-SEQUENCE:{window[0].number}",
    ]
    previous: PlaylistSegment | None = None
    for segment in window:
        new_broadcast = previous is not None and previous.broadcast_id != segment.broadcast_id
        # Before the window's first segment a tag resets nothing, and dropping
        # it keeps the number of tags from changing when that segment leaves
        # the window (there is no EXT-X-DISCONTINUITY-SEQUENCE to count them).
        if (segment.discontinuity and previous is not None) or new_broadcast:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.started_at is not None:
            # On every segment, not only after discontinuities: each is
            # measured on its own (see sync), and a player then knows how far
            # behind live it is wherever it joins the window.
            lines.append(program_date_time(segment.started_at))
        lines.append(f"#EXTINF:{segment.duration:.3f},")
        lines.append(relative_uri(public_id, segment.broadcast_id, segment.number))
        previous = segment
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_replay(segments: list[PlaylistSegment]) -> str:
    """The VOD playlist of one broadcast (URIs relative to its directory).

    A gap in the sequence numbers (a segment that never made it) is marked
    with a discontinuity so players do not expect continuous timestamps, as
    is a segment whose timestamps jump (a publisher that reconnected within
    the stream's window continues the same broadcast from its own clock).
    """
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        f"#EXT-X-TARGETDURATION:{target_duration([s.duration for s in segments])}",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0].number if segments else 0}",
    ]
    previous: PlaylistSegment | None = None
    for segment in segments:
        gap = previous is not None and segment.number != previous.number + 1
        if gap or (segment.discontinuity and previous is not None):
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.started_at is not None:
            lines.append(program_date_time(segment.started_at))
        lines.append(f"#EXTINF:{segment.duration:.3f},")
        lines.append(f"{segment.number}.ts")
        previous = segment
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
