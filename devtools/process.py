"""Processes, ports and remembered services for devtools/stack.py.

The `Service` every starter returns, how a service process is spawned in its
own group and stopped (signal, wait, SIGKILL), free ports, waiting for a port,
and the state files that let a command line run leave a service running for
later runs to reuse.

Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0

# Ports handed out by free_port() in this process, so that several ports
# picked before any server binds them are all different.
_handed_out: set[int] = set()


class StackError(RuntimeError):
    """A service could not be found, started or prepared."""


@dataclass(kw_only=True)
class Service:
    """A running service; `.stop()` ends it only if this module started it."""

    name: str
    url: str
    log_path: Path | None = None
    started_in: float = 0.0
    process: subprocess.Popen | None = field(default=None, repr=False)
    # PostgreSQL: SIGTERM waits for every client to disconnect, SIGINT does not.
    stop_signal: int = signal.SIGTERM

    @property
    def owned(self) -> bool:
        """True when this module started the process (and so may stop it)."""
        return self.process is not None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process if we started it: signal, wait, then SIGKILL."""
        if self.process is not None:
            terminate(self.process, self.stop_signal, timeout)
            self.process = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------
# Processes and ports


def free_port(preferred: int | None = None) -> int:
    """A TCP port free on 127.0.0.1: `preferred` if it is free, else any."""
    if preferred and _can_bind(preferred):
        return preferred
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _can_bind(port: int) -> bool:
    """True if a server could bind 127.0.0.1:port now."""
    with socket.socket() as sock:
        # Servers set SO_REUSEADDR too: a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = START_TIMEOUT,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
) -> None:
    """Wait until host:port accepts connections; fail early if `process` dies."""
    deadline = time.monotonic() + timeout
    while not port_open(host, port, timeout=0.2):
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{process.args[0]} exited with {process.returncode} before "
                f"listening on {host}:{port}{_log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.02)


def wait_for_http(
    url: str,
    timeout: float = START_TIMEOUT,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
) -> None:
    """Wait until a GET of `url` answers 2xx; fail early if `process` dies.

    A listening port is not a server that answers: gunicorn's master binds
    before its workers have imported the app, which takes seconds on a busy
    machine. One request may wait in the listen backlog for as long as the
    deadline allows, so a slow start is waited for, not retried into a storm.
    """
    # No proxy from the environment: the URL is a local server.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        try:
            with opener.open(url, timeout=max(min(remaining, 30.0), 0.5)) as reply:
                if 200 <= reply.status < 300:
                    return
                last = f"HTTP {reply.status}"
        except OSError as exc:  # refused, reset, timed out, HTTPError (4xx/5xx)
            last = str(exc)
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{process.args[0]} exited with {process.returncode} before "
                f"answering {url}{_log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(f"{url} did not answer after {timeout}s ({last}){_log_tail(log_path)}")
        time.sleep(0.05)


def spawn(
    name: str, argv: list[str], var_dir: Path, *, user: str | None = None
) -> tuple[subprocess.Popen, Path]:
    """Start argv in its own process group, output to var_dir/logs/NAME.log.

    Its own group keeps a terminal's Ctrl-C away from it: the caller decides
    when it stops. `user` (only when running as root) drops privileges.
    """
    log_dir = var_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    identity = {}
    if user is not None:
        identity = {"user": user, "group": _group_of(user), "extra_groups": []}
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            close_fds=True,
            **identity,
        )
    return process, log_path


def terminate(process: subprocess.Popen, sig: int, timeout: float = 10.0) -> None:
    """Send `sig` to the process, wait, and SIGKILL its group if it lingers."""
    if process.poll() is not None:
        return
    try:
        process.send_signal(sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        # The leader is not reaped yet, so its group id still names our group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _group_of(user: str) -> int:
    """The primary group id of `user`."""
    return pwd.getpwnam(user).pw_gid


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    """The last lines of a log, formatted to end an error message."""
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- {log_path}:\n" + "\n".join(tail)


def _require(program: str) -> str:
    """The path of `program`, or a StackError saying how to install it."""
    path = shutil.which(program)
    if path is None:
        raise StackError(f"{program} not found: run devtools/bootstrap.sh")
    return path


# --------------------------------------------------------------------------
# Services left running by the command line (`stack.py postgres`, `redis`)


def _state_path(var_dir: Path, name: str) -> Path:
    """Where `remember` keeps the state of a left-running service."""
    return var_dir / "run" / f"{name}.json"


def remember(var_dir: Path, service: Service, port: int) -> None:
    """Record a started service so later runs reuse it and `stop` ends it."""
    assert service.process is not None
    path = _state_path(var_dir, service.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"pid": service.process.pid, "port": port, "url": service.url}
    path.write_text(json.dumps(state) + "\n")


def recall(var_dir: Path, name: str) -> dict | None:
    """The state of a remembered service if it is still alive and listening."""
    path = _state_path(var_dir, name)
    try:
        state = json.loads(path.read_text())
        os.kill(state["pid"], 0)
    except (OSError, ValueError, KeyError):
        return None
    return state if port_open("127.0.0.1", state["port"]) else None


def forget(var_dir: Path, name: str, sig: int = signal.SIGTERM) -> bool:
    """Stop a remembered service (started by an earlier command line run)."""
    state = recall(var_dir, name)
    _state_path(var_dir, name).unlink(missing_ok=True)
    if state is None:
        return False
    os.kill(state["pid"], sig)
    deadline = time.monotonic() + 10
    while _alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    """True if a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
