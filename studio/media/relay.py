"""Browser media → RTMP: an ffmpeg child that reads the MediaRecorder stream
(H.264 + Opus in Matroska/MP4) on stdin and publishes it to the media engine
(video copied, Opus → AAC), so the engine's normal publish callbacks apply.

Memory is bounded: chunks wait in a byte-limited buffer between the socket
and ffmpeg's stdin, and a writer thread feeds ffmpeg. When the buffer is full
or one write to ffmpeg hangs longer than `write_timeout`, the caller drops the
connection instead of buffering more. ffmpeg runs in its own process group and
is always killed and reaped by `close()`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from urllib.parse import quote

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 30


def publish_url(base: str, stream_name: str, ticket: str) -> str:
    """The RTMP URL the relay publishes to: `{base}/{stream}?ticket=...&ingest=websocket`.

    The URL ends up on ffmpeg's command line (ffmpeg takes its output URL
    from nowhere else), which any local user can read: so it carries a
    single-use publish ticket (`service.mint_publish_ticket`), never the
    stream secret. nginx-rtmp hands every query argument to on_publish as its
    own form field (and SRS passes the query as `param`), so the callback can
    tell this publisher came through the browser socket.
    """
    return f"{base.rstrip('/')}/{stream_name}?ticket={quote(ticket, safe='')}&ingest=websocket"


def ffmpeg_argv(rtmp_url: str, input_format: str = "matroska", ffmpeg: str = "ffmpeg") -> list[str]:
    """ffmpeg reading the browser's container (`matroska` or `mov`) on stdin
    and publishing FLV."""
    return [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "warning",
        # The browser's recorder is the clock: no -re, read as it arrives.
        "-fflags",
        "+genpts+nobuffer",
        "-analyzeduration",
        "2000000",
        "-probesize",
        "1000000",
        "-f",
        input_format,
        "-i",
        "pipe:0",
        "-map",
        "0:v:0?",
        "-map",
        "0:a:0?",
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ar",
        "44100",
        "-f",
        "flv",
        rtmp_url,
    ]


class RelayOverflow(Exception):
    """The buffer towards ffmpeg is full: ffmpeg cannot keep up."""


class FfmpegRelay:
    """One ffmpeg child fed from a bounded buffer; see the module docstring."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        max_buffer_bytes: int = 8 * 1024 * 1024,
        write_timeout: float = 10.0,
        redact: Sequence[str] = (),
    ):
        self.max_buffer_bytes = max_buffer_bytes
        self.write_timeout = write_timeout
        # Secrets (the stream key is in the RTMP URL) never reach the logs.
        self._redact = [word for word in redact if word]
        self.bytes_in = 0
        self.bytes_written = 0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._closing = False
        self._write_started: float | None = None
        self._cond = threading.Condition()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0,  # killpg reaches anything ffmpeg might start
            close_fds=True,
        )
        self.pid = self.process.pid
        self._writer = threading.Thread(target=self._write_loop, name=f"relay-writer-{self.pid}")
        self._reader = threading.Thread(target=self._stderr_loop, name=f"relay-stderr-{self.pid}")
        self._writer.daemon = self._reader.daemon = True
        self._writer.start()
        self._reader.start()

    # --- feeding -------------------------------------------------------------

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    def feed(self, chunk: bytes) -> None:
        """Queue a chunk for ffmpeg; raises RelayOverflow when the buffer is full."""
        with self._cond:
            if self._buffered + len(chunk) > self.max_buffer_bytes:
                raise RelayOverflow(f"{self._buffered} bytes already waiting for ffmpeg")
            self._chunks.append(chunk)
            self._buffered += len(chunk)
            self.bytes_in += len(chunk)
            self._cond.notify()

    def stalled(self, now: float | None = None) -> bool:
        """True when one write to ffmpeg has been blocked longer than write_timeout."""
        started = self._write_started
        return started is not None and (now or time.monotonic()) - started > self.write_timeout

    def exited(self) -> bool:
        return self.process.poll() is not None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def _write_loop(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        while True:
            with self._cond:
                while not self._chunks and not self._closing:
                    self._cond.wait()
                if not self._chunks:
                    break  # closing and drained
                chunk = self._chunks.popleft()
            self._write_started = time.monotonic()
            try:
                stdin.write(chunk)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                break  # ffmpeg is gone; close() reaps it
            finally:
                self._write_started = None
                with self._cond:
                    self._buffered = max(0, self._buffered - len(chunk))
            self.bytes_written += len(chunk)
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def _stderr_loop(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        for raw in stderr:
            line = raw.decode(errors="replace").rstrip()
            for word in self._redact:
                line = line.replace(word, "***")
            if line:
                self._stderr_tail.append(line)

    # --- ending --------------------------------------------------------------

    def close(self, grace: float = 5.0, drain: bool = True) -> int:
        """End ffmpeg: hand it what is still buffered (unless `drain` is
        False), close stdin (it flushes and unpublishes), wait `grace`
        seconds, then SIGKILL its process group. Always reaps; returns the
        exit code. Safe to call twice."""
        with self._cond:
            self._closing = True
            if not drain:
                self._chunks.clear()
                self._buffered = 0
            self._cond.notify()
        # The writer closes stdin once it is idle; if it is stuck in a write
        # that ffmpeg does not read, only killing ffmpeg unblocks it (at once
        # when nothing is to be handed over any more).
        if not drain and self._write_started is not None:
            self._kill()
        self._writer.join(grace)
        if self._writer.is_alive():
            self._kill()
        try:
            code = self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self.process.wait()
        self._writer.join(2.0)
        self._reader.join(2.0)
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()  # type: ignore[union-attr]
        return code

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
