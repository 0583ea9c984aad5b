"""`make dev`'s processes under honcho's Manager (prefixed output; when one
exits, SIGTERM to the others, SIGKILL after `kill_wait` seconds), plus each
child's output in var/logs/NAME.log, the first to exit named with its exit
code and log, and the services started before (mirakuru) watched."""

from __future__ import annotations

import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

import honcho.manager
from honcho.manager import Manager
from honcho.printer import Message, Printer
from mirakuru import SimpleExecutor

from devtools.process import ROOT


class _LogPrinter(Printer):
    """honcho's prefixed output, plus each child's lines in its log file."""

    def __init__(self, output: TextIO, log_paths: dict[str, Path]) -> None:
        super().__init__(output)
        self.log_paths = log_paths

    def write(self, message: Message) -> None:
        if path := self.log_paths.get(message.name):
            data = message.data if isinstance(message.data, bytes) else message.data.encode()
            with open(path, "ab") as log:
                log.write(data)
        super().write(message)


class Supervisor(Manager):
    """Until a child exits or SIGINT/SIGTERM/SIGHUP; `exited`: (name, code) of the first."""

    def __init__(self, log_dir: Path, *, output: TextIO = sys.stdout, kill_wait: int = 25) -> None:
        self.log_dir, self.log_paths = log_dir, {}
        super().__init__(_LogPrinter(output, self.log_paths))
        # Longer than the slowest graceful stop (an RQ worker finishing an upload).
        honcho.manager.KILL_WAIT = kill_wait
        self.exited: tuple[str, int] | None = None
        self._watched: list[tuple[str, SimpleExecutor]] = []
        self._on_started: Callable[[], object] = lambda: None

    def add(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path = ROOT) -> Path:
        """A child to start with run(); returns its log path (log_dir/NAME.log)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_paths[name] = self.log_dir / f"{name}.log"
        self.log_paths[name].touch()
        # exec: the shell honcho starts becomes the program (signals, exit code).
        self.add_process(name, "exec " + shlex.join(argv), env=dict(env), cwd=str(cwd))
        return self.log_paths[name]

    def watch(self, name: str, service: SimpleExecutor | None, log_path: Path | None) -> None:
        """A service started before (a mirakuru executor): if it dies, everything stops."""
        if service is not None:
            self.log_paths.setdefault(name, log_path)
            self._watched.append((name, service))

    def run(self, on_started: Callable[[], object] = lambda: None) -> None:
        """Start every child, run `on_started` in a thread, block until all have stopped."""
        self._on_started = on_started
        self.loop()

    def _start(self) -> None:
        super()._start()
        # Not before honcho's forks: its per-child processes must not act on
        # a hangup, nor inherit a thread's lock.
        signal.signal(signal.SIGHUP, lambda *_: self.terminate())
        for target in (self._watch_services, self._on_started):
            threading.Thread(target=target, daemon=True).start()

    def terminate(self) -> None:
        # honcho terminates the others as soon as a child has exited.
        stopped = [name for name, state in self._processes.items() if "returncode" in state]
        if stopped and not self._terminating and self.exited is None:
            self._report(stopped[0], self._processes[stopped[0]]["returncode"])
        super().terminate()

    def _report(self, name: str, code: int) -> None:
        self.exited = (name, code)
        how = f"exited with code {code}"
        if code < 0:
            how = f"was killed by {signal.Signals(-code).name} (exit code {code})"
        self._system_print(
            f"{name} {how}; its log: {self.log_paths.get(name)}\n"
            "Stopping everything; fix what the log shows and run `make dev` again.\n"
        )

    def _watch_services(self) -> None:
        while not self._terminating:
            time.sleep(1)
            for name, service in self._watched:
                if not (service.running() or self._terminating):
                    # A PostgreSQL cluster's process is pg_ctl, which exited with 0.
                    self._report(name, (service.process and service.process.returncode) or 1)
                    self.terminate()
                    return
