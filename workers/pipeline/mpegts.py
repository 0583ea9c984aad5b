"""Timestamps inside an MPEG-TS segment.

A segment that already left the engine's playlist window (the uploader was
down for a while) has no EXTINF any more; its duration is recovered from the
presentation timestamps (PTS) of its PES packets: the distance to the next
segment's first PTS, or, for the last one, its own PTS span plus one frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKET = 188
SYNC = 0x47
CLOCK = 90_000  # PTS ticks per second
WRAP = 1 << 33


@dataclass(frozen=True)
class PtsRange:
    first: int  # first video PTS (audio if there is no video), in 90 kHz ticks
    low: int
    high: int
    frame_gap: int  # typical distance between two timestamps of the same stream


def pts_range(data: bytes) -> PtsRange | None:
    """PTS facts of a segment's bytes, or None if it carries no timestamps."""
    first_video: int | None = None
    first_any: int | None = None
    low = high = None
    last_by_stream: dict[int, int] = {}
    gaps: list[int] = []
    for offset in range(0, len(data) - PACKET + 1, PACKET):
        if data[offset] != SYNC or not data[offset + 1] & 0x40:
            continue  # not a packet start of a PES
        pts, stream_id = _pes_pts(data, offset)
        if pts is None:
            continue
        if first_any is None:
            first_any = pts
        if first_video is None and 0xE0 <= stream_id <= 0xEF:
            first_video = pts
        low = pts if low is None else min(low, pts)
        high = pts if high is None else max(high, pts)
        previous = last_by_stream.get(stream_id)
        if previous is not None and pts > previous:
            gaps.append(pts - previous)
        last_by_stream[stream_id] = pts
    if first_any is None or low is None or high is None:
        return None
    gap = sorted(gaps)[len(gaps) // 2] if gaps else 0
    first = first_video if first_video is not None else first_any
    return PtsRange(first=first, low=low, high=high, frame_gap=gap)


def first_pts(data: bytes) -> int | None:
    """`pts_range(data).first` without reading past the first video
    timestamp (near the start of a segment): the continuity check of every
    segment needs only this. None if the segment carries no timestamps."""
    first_any: int | None = None
    for offset in range(0, len(data) - PACKET + 1, PACKET):
        if data[offset] != SYNC or not data[offset + 1] & 0x40:
            continue
        pts, stream_id = _pes_pts(data, offset)
        if pts is None:
            continue
        if 0xE0 <= stream_id <= 0xEF:
            return pts
        if first_any is None:
            first_any = pts
    return first_any


def _pes_pts(data: bytes, offset: int) -> tuple[int | None, int]:
    header = data[offset : offset + 4]
    adaptation = (header[3] >> 4) & 0x3
    start = offset + 4
    if adaptation in (2, 3):
        start += 1 + data[start]
    if adaptation == 2 or start + 14 > offset + PACKET:
        return None, 0
    pes = data[start : start + 14]
    if pes[0:3] != b"\x00\x00\x01":
        return None, 0
    stream_id = pes[3]
    if not (0xC0 <= stream_id <= 0xEF) or not (pes[7] >> 6) & 0x2:
        return None, stream_id
    b = pes[9:14]
    pts = ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
    return pts, stream_id


def read_range(path: Path) -> PtsRange | None:
    """pts_range of a file on disk."""
    return pts_range(path.read_bytes())


def duration(this: PtsRange, following: PtsRange | None) -> float:
    """Seconds of `this` segment: up to the next segment's first timestamp when
    known (exact), else its own span plus one frame."""
    if following is not None:
        delta = (following.first - this.first) % WRAP
        if 0 < delta < 600 * CLOCK:
            return round(delta / CLOCK, 3)
    span = (this.high - this.low) % WRAP + this.frame_gap
    return round(span / CLOCK, 3)


# PMT stream types of audio: MPEG-1/2 audio, AAC (ADTS, LATM), AC-3.
AUDIO_STREAM_TYPES = frozenset({0x03, 0x04, 0x0F, 0x11, 0x81})
# PMT stream types of video FFmpeg decodes from an elementary stream: its decoder's name.
VIDEO_DECODERS = {0x1B: "h264", 0x24: "hevc"}
# How far apart (seconds) a segment's first timestamp may be from where the
# previous one ended for the two to count as one continuous stream.
CONTINUITY_TOLERANCE = 1.0


@dataclass(frozen=True)
class Tracks:
    audio_declared: bool  # the program map lists an audio stream
    audio_samples: bool  # and the segment carries some of it


def tracks(data: bytes) -> Tracks:
    """Which tracks a segment declares and which it carries.

    SRS fed over WHIP may open a broadcast with a segment whose AAC track is
    declared but empty (no sample yet, "sample rate 0"): a player that starts
    there builds a video-only pipeline and fails on the next segment's audio.
    """
    pmt_pids: set[int] = set()
    audio_pids: set[int] = set()
    audio_samples = False
    for offset in range(0, len(data) - PACKET + 1, PACKET):
        if data[offset] != SYNC:
            continue
        pid = (data[offset + 1] & 0x1F) << 8 | data[offset + 2]
        starts = bool(data[offset + 1] & 0x40)
        payload = _payload(data, offset)
        if payload is None:
            continue
        if pid == 0 and starts:
            pmt_pids |= _pat_pmt_pids(payload)
        elif pid in pmt_pids and starts:
            audio_pids |= _pmt_audio_pids(payload)
        elif pid in audio_pids and starts and payload[:3] == b"\x00\x00\x01":
            audio_samples = True
            break  # all there is to know: the rest of the file is not read
    return Tracks(audio_declared=bool(audio_pids), audio_samples=audio_samples)


def read_tracks(path: Path) -> Tracks:
    """tracks of a file on disk."""
    return tracks(path.read_bytes())


def continues(previous_first: int, previous_duration: float, first: int) -> bool:
    """Whether a segment whose first timestamp is `first` carries on where
    the previous one (first timestamp, length in seconds) ended, i.e. no
    real discontinuity."""
    expected = (previous_first + round(previous_duration * CLOCK)) % WRAP
    gap = (first - expected) % WRAP
    distance = min(gap, WRAP - gap)
    return distance <= CONTINUITY_TOLERANCE * CLOCK


@dataclass(frozen=True)
class VideoTrack:
    pid: int
    decoder: str  # FFmpeg's decoder of its elementary stream (VIDEO_DECODERS)


def video_track(data: bytes) -> VideoTrack | None:
    """The segment's first video track of a codec in VIDEO_DECODERS, from
    its program map (read up to the first one), or None."""
    pmt_pids: set[int] = set()
    for offset in range(0, len(data) - PACKET + 1, PACKET):
        if data[offset] != SYNC or not data[offset + 1] & 0x40:
            continue
        pid = (data[offset + 1] & 0x1F) << 8 | data[offset + 2]
        payload = _payload(data, offset)
        if payload is None:
            continue
        if pid == 0:
            pmt_pids |= _pat_pmt_pids(payload)
        elif pid in pmt_pids:
            for stream_type, stream_pid in _pmt_streams(payload):
                if stream_type in VIDEO_DECODERS:
                    return VideoTrack(stream_pid, VIDEO_DECODERS[stream_type])
    return None


def pes_payloads(data: bytes, pid: int) -> Iterator[bytes]:
    """The elementary stream of track `pid`, one PES packet (for video: one
    access unit) at a time, in file order."""
    parts: list[bytes] = []
    for offset in range(0, len(data) - PACKET + 1, PACKET):
        if data[offset] != SYNC or (data[offset + 1] & 0x1F) << 8 | data[offset + 2] != pid:
            continue
        payload = _payload(data, offset)
        if payload is None:
            continue
        if data[offset + 1] & 0x40:
            if parts:
                yield _pes_data(b"".join(parts))
            parts = [payload]
        elif parts:
            parts.append(payload)
    if parts:  # ended by the file (as FFmpeg's demuxer hands it on)
        yield _pes_data(b"".join(parts))


def _pes_data(pes: bytes) -> bytes:
    """A PES packet's data, after its header."""
    if len(pes) < 9 or pes[0:3] != b"\x00\x00\x01":
        return b""
    return pes[9 + pes[8] :]


def _payload(data: bytes, offset: int) -> bytes | None:
    adaptation = (data[offset + 3] >> 4) & 0x3
    start = offset + 4
    if adaptation in (2, 3):
        start += 1 + data[start]
    if adaptation == 2 or start >= offset + PACKET:
        return None
    return data[start : offset + PACKET]


def _section(payload: bytes) -> bytes:
    """A PSI section (after the pointer field), up to its CRC."""
    begin = 1 + payload[0]
    section = payload[begin:]
    if len(section) < 3:
        return b""
    length = (section[1] & 0x0F) << 8 | section[2]
    return section[: 3 + length - 4]


def _pat_pmt_pids(payload: bytes) -> set[int]:
    section = _section(payload)
    pids = set()
    for at in range(8, len(section) - 3, 4):
        program = section[at] << 8 | section[at + 1]
        if program != 0:  # 0 names the network PID
            pids.add((section[at + 2] & 0x1F) << 8 | section[at + 3])
    return pids


def _pmt_audio_pids(payload: bytes) -> set[int]:
    return {pid for stream_type, pid in _pmt_streams(payload) if stream_type in AUDIO_STREAM_TYPES}


def _pmt_streams(payload: bytes) -> list[tuple[int, int]]:
    """(stream type, PID) of each elementary stream a program map lists."""
    section = _section(payload)
    if len(section) < 12:
        return []
    info_length = (section[10] & 0x0F) << 8 | section[11]
    at = 12 + info_length
    streams = []
    while at + 5 <= len(section):
        stream_type = section[at]
        pid = (section[at + 1] & 0x1F) << 8 | section[at + 2]
        es_info = (section[at + 3] & 0x0F) << 8 | section[at + 4]
        streams.append((stream_type, pid))
        at += 5 + es_info
    return streams
