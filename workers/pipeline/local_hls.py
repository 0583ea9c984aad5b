"""What the media engine left in the local HLS directory.

SRS 5 and nginx-rtmp both write `{hls_dir}/live/<stream>.m3u8` (a sliding
window) and `{hls_dir}/live/<stream>-<N>.ts`. The uploader owns deletion, so
a `.ts` on disk is a segment not yet in the bucket; the playlist only lists
the newest few, which is why older files get their duration from their own
timestamps (`workers.pipeline.mpegts`).

A file is *complete* (safe to upload and delete) when the engine will not
write to it again: SRS renames `.ts.tmp` to `.ts` on close, but nginx-rtmp
writes the open fragment under its final name, so the newest unlisted file of
a live stream is still being written.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# A playlist or `.ts.tmp` untouched this long (at least) was left behind.
STREAM_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
SEGMENT_FILE = re.compile(r"^(?P<stream>[A-Za-z0-9_]{1,64})-(?P<number>\d{1,12})\.ts$")
# SRS writes the open fragment as `<stream>-<N>.ts.tmp` and renames it on
# close; one killed mid-fragment leaves the `.tmp` behind for good.
TEMP_SEGMENT_FILE = re.compile(r"^(?P<stream>[A-Za-z0-9_]{1,64})-(?P<number>\d{1,12})\.ts\.tmp$")


@dataclass(frozen=True)
class Entry:
    """One segment as a local playlist lists it."""

    number: int
    duration: float
    discontinuity: bool


@dataclass
class LocalPlaylist:
    media_sequence: int
    target_duration: int
    entries: list[Entry] = field(default_factory=list)
    mtime: float = 0.0

    def by_number(self) -> dict[int, Entry]:
        return {entry.number: entry for entry in self.entries}


@dataclass(frozen=True)
class LocalSegment:
    path: Path
    number: int
    mtime: float
    size: int


def live_dir(hls_dir: str | Path) -> Path:
    return Path(hls_dir) / "live"


def playlist_path(hls_dir: str | Path, stream: str) -> Path:
    return live_dir(hls_dir) / f"{stream}.m3u8"


def check_stream_name(stream: str) -> str:
    """Stream names become file names: refuse anything but [A-Za-z0-9_]."""
    if not isinstance(stream, str) or not STREAM_NAME.match(stream):
        raise ValueError(f"invalid stream name {stream!r}")
    return stream


def parse_playlist(text: str, stream: str) -> LocalPlaylist:
    """Parse an engine's live m3u8 (SRS 5 or nginx-rtmp; srs5-contract §2.5).

    Only URIs of this stream's own segments count; anything else is ignored.
    """
    playlist = LocalPlaylist(media_sequence=0, target_duration=0)
    duration: float | None = None
    discontinuity = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            playlist.media_sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            playlist.target_duration = int(float(line.split(":", 1)[1]))
        elif line.startswith("#EXT-X-DISCONTINUITY") and "SEQUENCE" not in line:
            discontinuity = True
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#"):
            match = SEGMENT_FILE.match(line.rsplit("/", 1)[-1])
            if match and match["stream"] == stream and duration is not None:
                playlist.entries.append(Entry(int(match["number"]), duration, discontinuity))
            duration, discontinuity = None, False
    return playlist


def read_playlist(hls_dir: str | Path, stream: str) -> LocalPlaylist | None:
    """The engine's current playlist for `stream`, or None if there is none."""
    path = playlist_path(hls_dir, stream)
    try:
        stat = path.stat()
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    playlist = parse_playlist(text, stream)
    playlist.mtime = stat.st_mtime
    return playlist


def local_segments(hls_dir: str | Path, stream: str) -> list[LocalSegment]:
    """Every `<stream>-<N>.ts` on disk, oldest first (by mtime, then number)."""
    found = []
    prefix = f"{stream}-"
    directory = live_dir(hls_dir)
    try:
        names = [n for n in _listdir(directory) if n.startswith(prefix) and n.endswith(".ts")]
    except FileNotFoundError:
        return []
    for name in names:
        match = SEGMENT_FILE.match(name)
        if not match or match["stream"] != stream:
            continue
        path = directory / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue  # uploaded and deleted by another worker meanwhile
        found.append(LocalSegment(path, int(match["number"]), stat.st_mtime, stat.st_size))
    found.sort(key=lambda s: (s.mtime, s.number))
    return found


def complete_segments(
    segments: list[LocalSegment],
    playlist: LocalPlaylist | None,
    publishing: bool,
    now: float,
    quiet_seconds: float,
) -> list[LocalSegment]:
    """The segments the engine has finished writing.

    Listed in the playlist, or numbered below its newest entry: closed. While
    nobody publishes, a file untouched for `quiet_seconds` is closed too (the
    last fragment of a publisher that went away).
    """
    listed = playlist.by_number() if playlist else {}
    newest = max(listed) if listed else -1
    done = []
    for seg in segments:
        closed = seg.number in listed or seg.number < newest
        gone_quiet = not publishing and now - seg.mtime >= quiet_seconds
        if closed or gone_quiet:
            done.append(seg)
    return done


def temp_segments(hls_dir: str | Path, stream: str) -> list[LocalSegment]:
    """Every `<stream>-<N>.ts.tmp` on disk (fragments being written, or
    abandoned by an engine that died while writing them)."""
    found = []
    directory = live_dir(hls_dir)
    try:
        names = [n for n in _listdir(directory) if n.startswith(f"{stream}-")]
    except FileNotFoundError:
        return []
    for name in names:
        match = TEMP_SEGMENT_FILE.match(name)
        if not match or match["stream"] != stream:
            continue
        try:
            stat = (directory / name).stat()
        except FileNotFoundError:
            continue
        number = int(match["number"])
        found.append(LocalSegment(directory / name, number, stat.st_mtime, stat.st_size))
    return found


def leftover_age(fragment: float, minimum: float = 30.0) -> float:
    """Seconds after which an untouched playlist or `.ts.tmp` is no longer
    the engine's: a live engine rewrites both every fragment."""
    return max(minimum, 5 * fragment)


def streams_on_disk(hls_dir: str | Path) -> dict[str, dict]:
    """Per stream name: `playlist_mtime`, `oldest_segment_mtime` and
    `oldest_temp_mtime` (each None when absent) of what is in the local
    directory."""
    streams: dict[str, dict] = {}
    directory = live_dir(hls_dir)
    try:
        names = _listdir(directory)
    except FileNotFoundError:
        return {}
    for name in names:
        if name.endswith(".m3u8"):
            stream, kind = name[: -len(".m3u8")], "playlist_mtime"
            if not STREAM_NAME.match(stream):
                continue
        elif match := SEGMENT_FILE.match(name):
            stream, kind = match["stream"], "oldest_segment_mtime"
        elif match := TEMP_SEGMENT_FILE.match(name):
            stream, kind = match["stream"], "oldest_temp_mtime"
        else:
            continue
        try:
            mtime = (directory / name).stat().st_mtime
        except FileNotFoundError:
            continue
        info = streams.setdefault(
            stream,
            {"playlist_mtime": None, "oldest_segment_mtime": None, "oldest_temp_mtime": None},
        )
        if kind == "playlist_mtime" or info[kind] is None or mtime < info[kind]:
            info[kind] = mtime
    return streams


def _listdir(directory: Path) -> list[str]:

    return os.listdir(directory)


def target_duration(durations: list[float], floor: float = 1.0) -> int:
    """EXT-X-TARGETDURATION: the longest segment, rounded up (RFC 8216 4.3.3.1)."""
    return max(1, math.ceil(max([floor, *durations]) - 1e-9))
