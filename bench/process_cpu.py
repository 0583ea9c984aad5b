"""CPU time by process group, read from /proc: among the processes a
benchmark started (its descendants), by command line, and the PostgreSQL
backends of its own database (the server may be the machine's, not its
child)."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds incl. reaped children)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime and the times of its reaped children (a job's
        # work-horse or a PostgreSQL backend that has exited).
        found[int(entry.name)] = (int(fields[1]), command, sum(map(int, fields[11:15])) / TICK)
    return found


def cpu_by_group(database: str, groups: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """CPU seconds so far per group: a process counts for the first group
    with a needle in its command line; "postgres" takes the backends of
    `database`."""
    found = processes()
    me = os.getpid()

    def ours(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            seen.add(pid)
            if pid == me:
                return True
            pid = found.get(pid, (0, "", 0))[0]
        return False

    totals = dict.fromkeys(groups, 0.0)
    for pid, (_, command, seconds) in found.items():
        if pid == me:
            continue
        if command.startswith("postgres:") and f" {database} " in command:
            totals["postgres"] += seconds
            continue
        if not ours(pid):
            continue
        for group, needles in groups.items():
            if any(needle in command for needle in needles):
                totals[group] += seconds
                break
    return totals
