"""One multistream relay: a child process (`workers/relay_child.py`) that
plays a live stream back from the media engine over RTMP and publishes it,
unchanged, to one target. Each relay is its own process and thread, so a
target that fails touches neither the broadcast nor the other targets.

The relay reports its state through `on_state(state, error)`: `connecting`
on the first attempt, `live` once media reaches the target, `retrying` with
the last error after a failure (then it tries again after a backoff that
doubles up to `retry_max` seconds). It never reports `stopped`: whoever
stops it does.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from redis.backoff import EqualJitterBackoff

from studio.streams.targets import Relay

log = logging.getLogger("workers.multistream")

STDERR_TAIL_LINES = 20
# The relay's process; the URLs go to it on stdin, never on its command line.
RELAY_ARGV = [sys.executable, "-m", "workers.relay_child"]
StateCallback = Callable[[str, str | None], None]


def private_address_problem(url: str) -> str | None:
    """Why a relay must not connect to `url`'s host, or None: a target that
    resolves to a loopback, private, link-local or otherwise non-public
    address would let a creator probe the studio's own network."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        return f"Cannot resolve {host}: {exc}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            return f"{host} is a private or local address: targets must be on the internet."
    return None


class RelayRunner:
    """Runs and re-runs the process of one relay in a thread until `stop()`;
    `source()` gives each attempt the URL to read (a fresh play grant: it
    expires)."""

    def __init__(
        self,
        relay: Relay,
        source: Callable[[], str],
        on_state: StateCallback,
        retry_max: float = 30.0,
        allow_private: bool = False,
    ):
        self.relay = relay
        self.allow_private = allow_private
        self.source = source
        self.on_state = on_state
        self.backoff = EqualJitterBackoff(cap=retry_max, base=1.0)
        self._stop = threading.Event()
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"relay-{relay.target_id}", daemon=True
        )

    def start(self) -> RelayRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the relay to end (its process is terminated); `join` waits for it."""
        self._stop.set()
        with self._lock:
            process = self._process
        if process is not None:
            _signal_group(process, signal.SIGTERM)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the relay to end; a process that lingers is signalled
        again, then killed."""
        self._thread.join(1.0)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self._thread.is_alive():
                return
            with self._lock:
                process = self._process
            if process is not None:
                _signal_group(process, sig)
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the thread ------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        state = "connecting"
        while not self._stop.is_set():
            self._report(state, None)
            went_live, error = self._attempt()
            if self._stop.is_set():
                return
            if went_live:
                failures = 0
            if error is None:
                # The engine ended the playback (the publisher left): not the
                # target's fault. Try again shortly unless stopped meanwhile.
                state = "connecting"
                self._stop.wait(1.0)
                continue
            failures += 1
            state = "retrying"
            self._report(state, error)
            delay = self.backoff.compute(failures - 1)
            log.warning(
                "relay to target %s (stream %s) failed: %s; retrying in %.1fs",
                self.relay.target_id,
                self.relay.stream,
                error,
                delay,
            )
            self._stop.wait(delay)

    def _attempt(self) -> tuple[bool, str | None]:
        """One run of the relay's process: (whether media reached the target,
        the error or None)."""
        if not self.allow_private:
            problem = private_address_problem(self.relay.url)
            if problem:
                return False, problem
        request = json.dumps({"source": self.source(), "destination": self.relay.destination})
        try:
            process = subprocess.Popen(  # noqa: S603 (argv list, no shell)
                RELAY_ARGV,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own group: stop() signals it alone
            )
        except OSError as exc:
            return False, f"Cannot start the relay: {exc.strerror or exc}"
        with self._lock:
            self._process = process
        tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        reader = threading.Thread(target=_read_lines, args=(process.stderr, tail), daemon=True)
        reader.start()
        went_live = False
        try:
            with contextlib.suppress(BrokenPipeError):  # it was stopped meanwhile
                process.stdin.write(request.encode())
                process.stdin.close()
            for raw in process.stdout:  # `live` once media reaches the target
                if not went_live and raw.strip() == b"live":
                    went_live = True
                    self._report("live", None)
        finally:
            code = process.wait()
            reader.join(5)
            with self._lock:
                self._process = None
        if code == 0:
            return went_live, None
        message = next((line for line in reversed(tail) if line.strip()), "")
        error = self.relay.redact(message.strip()) or f"the relay exited with status {code}"
        return went_live, error[:500]

    def _report(self, state: str, error: str | None) -> None:
        if self._stop.is_set():
            return  # whoever stopped it records `stopped`
        try:
            self.on_state(state, error)
        except Exception:  # the database being down must not end the relay
            log.exception("state of target %s not recorded", self.relay.target_id)


def _read_lines(pipe, tail: collections.deque[str]) -> None:
    for raw in pipe:
        tail.append(raw.decode(errors="replace"))


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
