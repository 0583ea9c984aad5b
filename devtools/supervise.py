"""The processes `make dev` runs in the foreground, supervised by honcho.

honcho's `Manager` (a Python Foreman) starts each child in its own session,
prints its output prefixed with its name, and when any child exits it stops
all the others (SIGTERM to each process group, SIGKILL after `kill_wait`
seconds). On top of it this module adds what make dev needs:

- each child's output is also appended to var/logs/NAME.log;
- the first child to exit is reported at once with its exit code and log;
- services started elsewhere (nginx, a private PostgreSQL, ...) can be
  watched: if one dies, everything stops the same way.

Adding a child process is one `supervisor.add(name, argv, env)` line.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, TextIO

import honcho.manager
from honcho.manager import Manager
from honcho.printer import Message, Printer

from devtools import stack


class _LogPrinter(Printer):
    """honcho's prefixed terminal output, plus every child's lines appended
    to its own log file."""

    def __init__(self, output: TextIO, log_paths: dict[str, Path]) -> None:
        super().__init__(output)
        self.log_paths = log_paths
        self._files: dict[str, BinaryIO] = {}

    def write(self, message: Message) -> None:
        path = self.log_paths.get(message.name)
        if path is not None:
            log = self._files.get(message.name)
            if log is None:
                log = self._files[message.name] = open(path, "ab")  # noqa: SIM115
            data = message.data if isinstance(message.data, bytes) else message.data.encode()
            log.write(data)
            log.flush()
        super().write(message)

    def close(self) -> None:
        for log in self._files.values():
            log.close()


class _Manager(Manager):
    """honcho's Manager, telling which child ended the run and where its log is."""

    def __init__(
        self,
        printer: _LogPrinter,
        on_exit: Callable[[str, int], None],
        after_start: Callable[[], None],
    ) -> None:
        super().__init__(printer)
        self._on_exit = on_exit
        self._after_start = after_start
        self._reported: set[str] = set()

    def _start(self) -> None:
        super()._start()
        # Threads only after honcho has forked its per-child processes.
        self._after_start()

    def _system_print(self, data: str) -> None:
        super()._system_print(data)
        # honcho records a child's return code just before printing "stopped".
        for name, state in self._processes.items():
            if "returncode" in state and name not in self._reported:
                self._reported.add(name)
                if not self._terminating:
                    self._on_exit(name, state["returncode"])


class Supervisor:
    """Run children in the foreground until one exits or SIGINT/SIGTERM/SIGHUP."""

    def __init__(self, log_dir: Path, *, output: TextIO = sys.stdout, kill_wait: int = 25) -> None:
        self.log_dir = log_dir
        self.output = output
        # Longer than the slowest graceful stop (an RQ worker finishing an upload).
        self.kill_wait = kill_wait
        self.log_paths: dict[str, Path] = {}
        self.exited: tuple[str, int] | None = None
        self._printer = _LogPrinter(output, self.log_paths)
        self._manager = _Manager(self._printer, self._child_exited, self._start_threads)
        self._watched: list[tuple[str, subprocess.Popen, Path | None]] = []
        self._stop = threading.Event()
        self._on_started: Callable[[], None] | None = None

    def add(
        self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path = stack.ROOT
    ) -> Path:
        """A child to start with run(); returns its log path (var/logs/NAME.log)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_paths[name] = self.log_dir / f"{name}.log"
        self.log_paths[name].touch()  # there to look at even before a first line
        # exec: the shell honcho starts becomes the program, so signals and
        # the exit code are the program's own.
        self._manager.add_process(name, "exec " + shlex.join(argv), env=dict(env), cwd=str(cwd))
        return self.log_paths[name]

    def watch(self, name: str, process: subprocess.Popen | None, log_path: Path | None) -> None:
        """A process started elsewhere: if it exits, everything stops."""
        if process is not None:
            self._watched.append((name, process, log_path))

    def run(self, on_started: Callable[[], None] | None = None) -> int:
        """Start every child and block until all have stopped; returns the
        first exit code (130/143 after SIGINT/SIGTERM). `on_started` runs in
        a thread once the children are started (e.g. wait for ports, print
        a banner)."""
        honcho.manager.KILL_WAIT = self.kill_wait
        self._on_started = on_started
        try:
            self._manager.loop()
        finally:
            self._stop.set()
            self._printer.close()
        return self._manager.returncode or 0

    def stop(self) -> None:
        """Stop every child (as SIGTERM to make dev does)."""
        self._manager.terminate()

    def _child_exited(self, name: str, code: int) -> None:
        self.exited = (name, code)
        if code < 0:
            how = f"was killed by {signal.Signals(-code).name} (exit code {code})"
        else:
            how = f"exited with code {code}"
        log = self.log_paths.get(name)
        self._say(
            f"{name} {how}; its log: {log}\n"
            "Stopping everything; fix what the log shows and run `make dev` again.\n"
        )

    def _start_threads(self) -> None:
        # Set here, not before the fork: honcho's per-child processes must not
        # act on a hangup themselves.
        signal.signal(signal.SIGHUP, lambda *_: self._manager.terminate())
        threading.Thread(target=self._watch_services, daemon=True).start()
        if self._on_started is not None:
            threading.Thread(target=self._on_started, daemon=True).start()

    def _watch_services(self) -> None:
        while not self._stop.wait(0.5):
            for name, process, log_path in self._watched:
                code = process.poll()
                if code is not None and self.exited is None and not self._manager._terminating:
                    if log_path is not None:
                        self.log_paths.setdefault(name, log_path)
                    self._child_exited(name, code)
                    self._manager.returncode = code or 1
                    self._manager.terminate()
                    return

    def _say(self, text: str) -> None:
        self._manager._system_print(text)
