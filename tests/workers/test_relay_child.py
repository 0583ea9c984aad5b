"""A multistream relay's process (`workers/relay_child.py`), run as the
multistream process runs it: URLs on stdin, the outcome in its exit code,
stdout and stderr, never a URL or key in what it says."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from devtools.process import free_port
from workers.relays import RELAY_ARGV

ROOT = Path(__file__).resolve().parents[2]
SEGMENT = ROOT / "tests" / "fixtures" / "srs5" / "whip-hls" / "whipfix-2.ts"
KEY = "target-secret-key-9876"


def run(request: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        RELAY_ARGV, input=request, cwd=ROOT, capture_output=True, timeout=60, check=False
    )


def test_a_target_that_refuses_is_named_without_its_key():
    """Media read (a real segment), the target's port closed: exit 1, the
    reason names the target and not its URL or key, nothing went live."""
    target = f"rtmp://127.0.0.1:{free_port()}/live/{KEY}"
    result = run(json.dumps({"source": str(SEGMENT), "destination": target}).encode())
    assert result.returncode == 1, result
    assert result.stderr.decode().strip() == "the target: Connection refused"
    assert b"live" not in result.stdout


def test_a_source_that_cannot_be_read_is_named():
    source = f"rtmp://127.0.0.1:{free_port()}/live/stream?grant=secret-grant"
    result = run(json.dumps({"source": source, "destination": "rtmp://x/live/k"}).encode())
    assert result.returncode == 1, result
    assert result.stderr.decode().strip() == "the studio's stream: Connection refused"


def test_a_bad_request_is_refused():
    for request in (b"", b"not json", b'{"source": "a"}', b"[1, 2]", b"\x00" * 10):
        result = run(request)
        assert result.returncode == 2, (request, result)
        assert result.stderr.decode().strip() == "bad relay request on stdin"
