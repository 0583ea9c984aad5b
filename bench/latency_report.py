"""The "Latency" section of docs/benchmarks.md, from `bench/latency.py`'s results."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from pathlib import Path

from bench.api_latency import machine

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Latency"


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"{statistics.median(values):.1f} s (min {min(values):.1f}, max {max(values):.1f},"
        f" n={len(values)})"
    )


# The rows of each fragment length, in this order.
VIEWERS = {
    "joined": "HLS, joined",
    "start": "HLS, start",
    "webrtc": "WebRTC (WHEP double), joined",
}


def section(results: list[dict], samples: int) -> str:
    rows = "\n".join(
        f"| {r['fragment']:g} s | {VIEWERS[viewer]} | {summary(r[viewer]['burned'])}"
        f" | {summary(r[viewer]['pdt'])} | {r[viewer]['stalls']} |"
        for r in results
        for viewer in VIEWERS
        if viewer in r
    )
    return f"""{SECTION}

`make bench-latency` (`bench/latency.py`): glass-to-glass latency as a viewer
sees it. ffmpeg publishes a 640x360 test pattern over RTMP in real time
(x264 ultrafast, zerolatency, a keyframe every fragment) with its capture
clock burned into the picture (16 boxes: tenths of a second, plus the time as
text); nginx-rtmp cuts HLS fragments, the watcher and RQ workers upload them
and the live playlist to fake-gcs-server, the CDN edge (nginx proxy_cache)
serves them, and Chromium plays the watch page with its own hls.js settings
(1.5 fragments, at least a target duration, behind the live edge; up to 1.1x
speed to get back there). Once a second for
{samples} s: **burned clock** = the viewer's clock minus the clock in the frame on
screen (read back from a canvas); **program date-time** = the page's own
"N s behind live" (hls.js's playingDate, from #EXT-X-PROGRAM-DATE-TIME = the
segment file's close time minus its duration); **stalls** = times the video
waited for data during those {samples} s. HLS viewers:
**joined** opened the page 8 fragments into the broadcast (as most viewers
do); **start** opened it as the broadcast began. With `--whep`, a third
viewer joins 8 fragments in over WebRTC against the WHEP test double
(`bench/latency_whep.py`: it reads the stream back from nginx-rtmp and
re-encodes it with aiortc, which SRS does not do: that row is the page's
WebRTC path on loopback, not SRS's own figure). Median, min and max.

| Fragment (STUDIO_HLS_FRAGMENT) | Viewer | Burned clock | Program date-time | Stalls |
|---|---|---|---|---:|
{rows}

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; encoder,
servers, bucket emulator and browser share the machine.
The two HLS figures agree within about 0.1 s (the encoder's own delay, which
the program date-time, starting at the ingest, does not see): the page's
"behind live" figure is the viewer's real latency. An HLS viewer sits the
player's distance (1.5 fragments) behind the live edge that hls.js estimates
(the newest listed segment's end plus the playlist's age), plus the fragment
being written, which cannot be uploaded before it is closed, plus the upload
of segment and playlist. Before the distance followed the fragment length
(it was a fixed 5 s) a viewer who joined sat 8.0 s behind at 2 s fragments
and 4.7 s at 1 s; one who was there at the start 4.1 s and 2.7 s (it rode
the newest segment, which now every viewer is held back from by the same
distance, so at 2 s fragments it is about 1 s later than before). From run
to run the figures move by a few tenths. Shorter fragments cost more requests and objects per minute
(see "Media pipeline").
"""


def write_section(text: str) -> None:
    """Replace the "Latency" section of docs/benchmarks.md (others are kept)."""
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = current.find(SECTION + "\n")
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(SECTION))
        updated = current[:start] + text + (current[end + 1 :] if end != -1 else "")
    DOC.write_text(updated.rstrip("\n") + "\n")
