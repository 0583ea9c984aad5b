"""The storage adapter's own CPU per upload (the worker's side, not the
bucket's): `studio.storage.gcs.Storage` of the checkout given (default:
this one) uploading a 95 KB segment and a short live playlist, alternately,
to a fresh fake-gcs-server (filesystem backend), 5 rounds of 800 uploads;
prints the process CPU per upload of each round and their median.

Usage: python bench/upload_client.py [CHECKOUT]
Compare two versions by running it with each checkout in turn.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from devtools.services import create_bucket, start_fake_gcs  # noqa: E402
from studio.storage import gcs  # noqa: E402

VAR = Path(__file__).resolve().parent.parent / "var" / "bench" / "upload-client"
ROUNDS, PAIRS = 5, 400


def main() -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    segment = VAR / "segment.ts"
    segment.write_bytes(os.urandom(95_000))
    run = secrets.token_hex(4)  # fresh names: a second run must not hit existing objects
    service = start_fake_gcs(VAR, backend="filesystem")
    try:
        create_bucket(service.url, "upload-client")
        storage = gcs.Storage(gcs.make_client(service.url), "upload-client")
        rounds = []
        for number in range(ROUNDS):
            started = time.process_time()
            for i in range(PAIRS):
                folder = f"live/{run}{i % 300}"
                storage.upload_segment(f"{folder}/1/{number * PAIRS + i}.ts", segment)
                storage.upload_live_playlist(f"{folder}/playlist.m3u8", "#EXTM3U\n" * 20)
            rounds.append((time.process_time() - started) / (2 * PAIRS) * 1000)
    finally:
        service.stop()
    shown = " ".join(f"{r:.3f}" for r in rounds)
    print(f"{ROOT.name}: client CPU ms/upload {shown} (median {statistics.median(rounds):.3f})")


if __name__ == "__main__":
    main()
