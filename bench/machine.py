"""The machine a benchmark ran on, and a fixed reference workload timed on it.

The benchmarks' figures depend on the machine as much as on the code (runs
on an Intel Xeon and on an AMD EPYC of the same size differ by up to 3x per
upload), and the machine changes from one day to the next. Each benchmark
report therefore names the CPU and gives this workload's time (lower is
faster): the studio's kind of work (JSON, hashing, an HTTP-like parse,
small objects) in one thread, the best of many short rounds (the least
disturbed by other work), so that two reports compare only when their
reference times agree, or scaled by them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import zlib
from pathlib import Path

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB: a small segment's size
DOCUMENT = {"streams": [{"id": f"s{i:04d}", "live": i % 3 == 0, "viewers": i} for i in range(200)]}
REQUEST = b"POST /hooks/srs HTTP/1.1\r\nHost: studio\r\nContent-Type: application/json\r\n\r\n"


def _round() -> None:
    for _ in range(4):
        text = json.dumps(DOCUMENT)
        json.loads(text)
        hashlib.sha256(PAYLOAD).digest()
        zlib.crc32(PAYLOAD)
        head, _, _ = REQUEST.partition(b"\r\n\r\n")
        dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        sorted((item["viewers"], item["id"]) for item in DOCUMENT["streams"])


def calibration_ms(rounds: int = 50) -> float:
    """The reference workload's time in ms: the best of `rounds` (the least
    disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        _round()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


def machine() -> str:
    """The CPU, cores, memory, OS and Python, and the reference workload's time."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return (
        f"{model}, {os.cpu_count()} cores, {int(memory) // 1024 // 1024 + 1} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"reference workload {calibration_ms()} ms (`bench/machine.py`)"
    )


if __name__ == "__main__":
    print(machine())
