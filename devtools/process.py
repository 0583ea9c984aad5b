"""What every starter shares: free ports, executors logging to a file, templates."""

from __future__ import annotations

import contextlib
import string
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import port_for
import psutil
from mirakuru import SimpleExecutor
from mirakuru.exceptions import ExecutorError, ProcessFinishedWithError

ROOT = Path(__file__).resolve().parent.parent
E = TypeVar("E", bound=SimpleExecutor)
_handed_out: set[int] = set()  # so that ports picked before any server binds differ


class StackError(RuntimeError):
    """A service could not be found, started or prepared."""


def accepted_connections(port: int, exclude: int | None = None) -> dict[int, int]:
    """Established TCP connections to local `port`, counted by the process
    that accepted them (a gunicorn worker: the master only listens), other
    than the process `exclude` (a client in the same process)."""
    held: dict[int, int] = {}
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.status == psutil.CONN_ESTABLISHED
            and connection.laddr
            and connection.laddr.port == port
            and connection.pid not in (None, exclude)
        ):
            held[connection.pid] = held.get(connection.pid, 0) + 1
    return held


def free_port(preferred: int | None = None) -> int:
    """A TCP port free on 127.0.0.1: `preferred` if it is free, else any."""
    if preferred and preferred not in _handed_out and not port_for.port_is_used(preferred):
        port = preferred
    else:
        port = port_for.select_random(exclude_ports=_handed_out)
    _handed_out.add(port)
    return port


def executor(kind: type[E], argv: list[str], log_path: Path, *, env=None, cwd=ROOT, **opts) -> E:
    """A mirakuru executor of `kind` for argv, its output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - open for the executor's life
    output = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT}
    runner = kind(argv, cwd=str(cwd), envvars=env, **output, **opts)
    runner.log_path = log_path
    return runner


def start(runner: E, what: str) -> E:
    """runner.start(), or a StackError naming `what` and ending with its log."""
    try:
        return runner.start()
    except ExecutorError as error:
        raise StackError(f"{what}: {error}{log_tail(runner.log_path)}") from None


def stop(runner: SimpleExecutor) -> None:
    """runner.stop(), whatever the exit code of a process asked to stop."""
    with contextlib.suppress(ProcessFinishedWithError):
        runner.stop()


def render(template: Path, values: dict[str, object]) -> str:
    """A config template filled in (leaving nginx's `$variables` alone); a
    `${NAME}` left over is an error. URLs lose a trailing slash."""
    values = {k: v.rstrip("/") if isinstance(v, str) else v for k, v in values.items()}
    text = string.Template(template.read_text()).safe_substitute(values)
    if "${" in text:
        missing = text[text.index("${") :].split("}", 1)[0] + "}"
        raise StackError(f"{template.name}: no value for {missing}")
    return text


def log_tail(log_path: Path | None, lines: int = 15) -> str:
    """The last lines of a log, formatted to end an error message."""
    if log_path is None or not Path(log_path).exists():
        return ""
    tail = Path(log_path).read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- {log_path}:\n" + "\n".join(tail)


@dataclass(kw_only=True)
class Service:
    """A running service; `executor` is None for one that was already there."""

    name: str
    url: str
    log_path: Path | None = None
    executor: SimpleExecutor | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.executor is not None:
            stop(self.executor)
            self.executor = None
