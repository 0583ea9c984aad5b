"""One multistream relay's process (`python -m workers.relay_child`): copies a
live stream from the engine's RTMP playback to one target, unchanged, with
FFmpeg's libraries in this process (PyAV).

Both URLs arrive on stdin as JSON (`{"source": ..., "destination": ...}`),
never on the command line: a target's URL holds its stream key and the
source a play grant, and any user of the machine can read a process's
arguments. Prints `live` once media has reached the target; exits 0 when the
source ends (the publisher left), else 1 with the reason on stderr.
"""

from __future__ import annotations

import json
import sys

import av

IO_TIMEOUT = 10.0  # seconds without I/O on either side before giving up
MAX_REQUEST = 64 * 1024
SOURCE, TARGET = "the studio's stream", "the target"


class RelayError(Exception):
    """Why the relay stopped, in words for the creator (never a URL)."""


def relay(source: str, destination: str, timeout: float = IO_TIMEOUT) -> None:
    """Copy every audio and video packet of `source` to `destination` (FLV)
    until the source ends. Raises RelayError."""
    side = SOURCE
    try:
        with av.open(source, timeout=timeout) as engine:
            streams = [s for s in engine.streams if s.type in ("video", "audio")]
            if not streams:
                raise RelayError(f"{SOURCE} has neither video nor audio")
            side = TARGET
            with av.open(destination, "w", format="flv", timeout=timeout) as target:
                copies = {s.index: target.add_stream_from_template(s) for s in streams}
                packets, live = engine.demux(streams), False
                while True:
                    side = SOURCE
                    packet = next(packets, None)
                    if packet is None:
                        return
                    if packet.dts is None:
                        continue  # the demuxer's empty packet at the end
                    side, packet.stream = TARGET, copies[packet.stream.index]
                    target.mux(packet)
                    if not live:
                        live = True
                        print("live", flush=True)
    except av.FFmpegError as error:
        # strerror only: the error's filename is the URL, with its key.
        raise RelayError(f"{side}: {error.strerror or type(error).__name__}") from None


def main() -> int:
    try:
        request = json.loads(sys.stdin.read(MAX_REQUEST))
        relay(str(request["source"]), str(request["destination"]))
    except RelayError as error:
        print(error, file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError):
        print("bad relay request on stdin", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
