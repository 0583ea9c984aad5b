"""A simulated media engine, for measuring the pipeline alone.

N streams whose real, pre-encoded H.264/AAC segments are written into the
HLS directory at real-time pace, the way SRS and nginx-rtmp write them: each
segment as `<stream>-<n>.ts.tmp`, renamed to `<stream>-<n>.ts` when its last
frame is in, then the sliding live playlist rewritten (also through a
rename). Publish callbacks open each stream and unpublish callbacks close it,
in the engine's dialect; with `dialect="srs"` every segment also gets SRS's
`on_hls` callback (body as recorded from SRS 5.0.216), with nginx-rtmp
nothing (the watcher finds the files). Starts are spread over a fragment.

Writing a segment is a `write` of bytes already in memory and two renames,
and a callback one request on a kept-alive connection (http.client: a
`requests` call costs several times as much CPU, which SRS, in C++, does
not spend), so the engine costs a small fraction of a core even at N = 300,
and the machine goes to the pipeline: callbacks, RQ workers, the bucket,
PostgreSQL and Redis.
"""

from __future__ import annotations

import heapq
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ON_HLS = json.loads((ROOT / "tests" / "fixtures" / "srs5" / "on_hls.json").read_text())
ON_PUBLISH = json.loads((ROOT / "tests" / "fixtures" / "srs5" / "on_publish.json").read_text())
ON_UNPUBLISH = json.loads((ROOT / "tests" / "fixtures" / "srs5" / "on_unpublish.json").read_text())
WINDOW = 6  # segments in the live playlist, as both engines are configured


@dataclass(frozen=True)
class Source:
    """Pre-encoded segments of one fragment length: (bytes, seconds) each."""

    fragment: float
    segments: list[tuple[bytes, float]]


def make_source(var: Path, fragment: float, seconds: int = 120) -> Source:
    """`seconds` of 640x360 test pattern + tone (800 kbit/s, a keyframe every
    fragment), cut into HLS segments by ffmpeg once and cached in `var`."""
    folder = var / f"sim-source-{fragment:g}s-{seconds}"
    playlist = folder / "index.m3u8"
    if not playlist.exists():
        folder.mkdir(parents=True, exist_ok=True)
        gop = str(int(round(30 * fragment)))
        subprocess.run(
            [
                "ffmpeg",
                "-y",
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=640x360:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=44100",
                "-t",
                str(seconds),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-b:v",
                "800k",
                "-g",
                gop,
                "-keyint_min",
                gop,
                "-sc_threshold",
                "0",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-f",
                "hls",
                "-hls_time",
                f"{fragment:g}",
                "-hls_list_size",
                "0",
                "-hls_segment_filename",
                str(folder / "s%05d.ts"),
                str(playlist),
            ],
            check=True,
        )
    segments = []
    duration = None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append(((folder / line).read_bytes(), duration))
            duration = None
    return Source(fragment, segments)


@dataclass
class SimStream:
    public_id: str
    key: str
    started: float = 0.0
    number: int = 0
    entries: list[tuple[int, float]] = field(default_factory=list)  # (number, seconds)


class SimulatedEngine:
    """Runs the simulated streams; `closed` maps each segment's file name to
    the moment it appeared complete on disk (the rename)."""

    def __init__(self, hls_dir: Path, dialect: str, hook_url: str, source: Source):
        if dialect not in ("srs", "nginx-rtmp"):
            raise ValueError(f"unknown dialect {dialect!r}")
        self.live = Path(hls_dir) / "live"
        self.live.mkdir(parents=True, exist_ok=True)
        self.dialect = dialect
        self.hook_url = hook_url
        self.source = source
        self.closed: dict[str, float] = {}
        self.by_stream: dict[str, list[str]] = {}  # public id -> its segments' names
        self.started: dict[str, float] = {}
        self.callback_errors: list[str] = []
        self.cpu_seconds = 0.0
        self._connections = threading.local()  # one kept-alive connection per thread
        self._callbacks = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sim-hook")
        self._lock = threading.Lock()

    # --- callbacks -------------------------------------------------------------

    def _send(self, what: str, stream: SimStream, **extra) -> None:
        if self.dialect == "srs":
            base = {"on_publish": ON_PUBLISH, "on_unpublish": ON_UNPUBLISH, "on_hls": ON_HLS}[what]
            body = {
                **base,
                "stream": stream.public_id,
                "param": f"?secret={stream.key}",
                "client_id": f"sim{stream.public_id[:6]}",
                "stream_url": f"/live/{stream.public_id}",
                **extra,
            }
            payload, kind = json.dumps(body).encode(), "application/json"
        else:
            form = {
                "call": {"on_publish": "publish", "on_unpublish": "publish_done"}[what],
                "app": "live",
                "name": stream.public_id,
                "clientid": str(abs(hash(stream.public_id)) % 100000),
                "addr": "127.0.0.1",
                "secret": stream.key,
            }
            payload = urllib.parse.urlencode(form).encode()
            kind = "application/x-www-form-urlencoded"

        def run() -> None:
            try:
                status = self._post(payload, kind)
                if status != 200:
                    self.callback_errors.append(f"{what} {stream.public_id}: {status}")
            except (OSError, http.client.HTTPException) as error:
                self.callback_errors.append(f"{what} {stream.public_id}: {error}")

        return self._callbacks.submit(run)

    def _post(self, payload: bytes, kind: str) -> int:
        """POST to the hook URL on this thread's connection (a new one if the
        server closed it); returns the status."""
        url = urllib.parse.urlsplit(self.hook_url)
        target = f"{url.path}?{url.query}" if url.query else url.path
        headers = {"Content-Type": kind, "Content-Length": str(len(payload))}
        reused = getattr(self._connections, "value", None)
        if reused is not None:
            try:
                return self._request(reused, target, payload, headers)
            except (ConnectionError, http.client.RemoteDisconnected):
                reused.close()  # the server closed it while idle: once more on a new one
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self._connections.value = connection
        return self._request(connection, target, payload, headers)

    @staticmethod
    def _request(connection, target: str, payload: bytes, headers: dict) -> int:
        connection.request("POST", target, body=payload, headers=headers)
        reply = connection.getresponse()
        reply.read()
        return reply.status

    # --- files -----------------------------------------------------------------

    def _write_segment(self, stream: SimStream) -> None:
        data, seconds = self.source.segments[stream.number % len(self.source.segments)]
        name = f"{stream.public_id}-{stream.number}.ts"
        tmp = self.live / f"{name}.tmp"
        with open(tmp, "wb") as out:
            out.write(data)
        os.rename(tmp, self.live / name)
        self.closed[name] = time.time()
        self.by_stream.setdefault(stream.public_id, []).append(name)
        stream.entries.append((stream.number, seconds))
        del stream.entries[:-WINDOW]
        self._write_playlist(stream)
        if self.dialect == "srs":
            self._send(
                "on_hls",
                stream,
                duration=seconds,
                file=str(self.live / name),
                url=f"live/{name}",
                m3u8=str(self.live / f"{stream.public_id}.m3u8"),
                m3u8_url=f"live/{stream.public_id}.m3u8",
                seq_no=stream.number,
            )
        stream.number += 1

    def _write_playlist(self, stream: SimStream) -> None:
        first = stream.entries[0][0]
        target = max(round(seconds + 0.5) for _, seconds in stream.entries)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
            f"#EXT-X-TARGETDURATION:{target}",
        ]
        for number, seconds in stream.entries:
            lines += [f"#EXTINF:{seconds:.3f},", f"{stream.public_id}-{number}.ts"]
        path = self.live / f"{stream.public_id}.m3u8"
        tmp = path.with_suffix(".m3u8.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.rename(tmp, path)

    # --- the run ---------------------------------------------------------------

    def run(self, streams: list[tuple[str, str]], seconds: float) -> None:
        """Publish every stream (starts spread over one fragment), write
        segments in real time for `seconds`, then unpublish them all."""
        cpu = time.process_time()
        begin = time.time()
        spread = self.source.fragment / max(1, len(streams))
        queue: list[tuple[float, int]] = []
        sims = [SimStream(public_id, key) for public_id, key in streams]
        for index, stream in enumerate(sims):
            stream.started = begin + index * spread
            first = self.source.segments[0][1]
            heapq.heappush(queue, (stream.started, -1 - index))  # publish
            heapq.heappush(queue, (stream.started + first, index))  # first segment
        end = begin + seconds
        while queue:
            at, index = heapq.heappop(queue)
            if at >= end and index >= 0:
                continue
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            if index < 0:
                stream = sims[-1 - index]
                self.started[stream.public_id] = time.time()
                self._send("on_publish", stream)
                continue
            stream = sims[index]
            self._write_segment(stream)
            following = self.source.segments[stream.number % len(self.source.segments)][1]
            heapq.heappush(queue, (at + following, index))
        for stream in sims:
            self._send("on_unpublish", stream)
        self._callbacks.shutdown(wait=True)
        self.cpu_seconds = time.process_time() - cpu


def segment_number(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"(.+)-(\d+)\.ts", name)
    if not match:
        raise ValueError(name)
    return match.group(1), int(match.group(2))
