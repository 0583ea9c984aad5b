"""What the bucket emulator costs per upload, as the objects it holds grow.

    .venv/bin/python bench/bucket_emulator.py [--objects 10000] [--step 2000]

fake-gcs-server stands in for Cloud Storage in every benchmark of the media
pipeline, on the same two cores, so its CPU counts against the pipeline's.
This uploads one real MPEG-TS segment (the simulated engine's, about 95 KB)
again and again under new names spread over 300 streams' folders, as the
pipeline does, to a fresh
fake-gcs-server with each backend (`memory`: bench/pipeline.py's;
`filesystem`: `make dev`'s and bench/pipeline_sim.py's), and prints per step
of `--step` objects the server's CPU per upload (its process's CPU time) and
the client's: google-cloud-storage's `Blob.upload_from_string`, and the
studio's storage adapter (`Storage.upload_segment`: one multipart upload on
the client's session, without a Blob per call).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sim_engine import make_source  # noqa: E402

from devtools.services import start_fake_gcs  # noqa: E402
from studio.storage.gcs import Storage, make_client  # noqa: E402

CACHE_CONTROL = "public, max-age=31536000, immutable"


def measure(backend: str, data: bytes, objects: int, step: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bucket-bench-") as var:
        gcs = start_fake_gcs(Path(var), backend=backend)
        try:
            server = psutil.Process(gcs.executor.process.pid)
            segment = Path(var) / "segment.ts"
            segment.write_bytes(data)
            studio = Storage(make_client(gcs.url), gcs.bucket)
            client = storage.Client(
                project="bench",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": gcs.url},
            )
            bucket = client.bucket(gcs.bucket)

            def library(name: str) -> None:
                blob = bucket.blob(name)
                blob.cache_control = CACHE_CONTROL
                blob.upload_from_string(data, content_type="video/mp2t")

            uploads = {
                "google-cloud-storage": library,
                "studio adapter": lambda name: studio.upload_segment(name, segment),
            }
            rows, held = [], 0
            while held < objects:
                for client_name, upload in uploads.items():
                    count = step // 2
                    server_before = sum(server.cpu_times()[:2])
                    client_before, wall_before = time.process_time(), time.monotonic()
                    for number in range(held, held + count):
                        upload(f"live/s{number % 300}/{number}.ts")
                    rows.append(
                        {
                            "backend": backend,
                            "held": held,
                            "client": client_name,
                            "server_ms": (sum(server.cpu_times()[:2]) - server_before)
                            / count
                            * 1000,
                            "client_ms": (time.process_time() - client_before) / count * 1000,
                            "wall_ms": (time.monotonic() - wall_before) / count * 1000,
                        }
                    )
                    held += count
            return rows
        finally:
            gcs.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--step", type=int, default=2_000)
    args = parser.parse_args()
    source = make_source(ROOT / "var", 2.0)
    data = source.segments[0][0]
    print(f"segment: {len(data):,} bytes; load average before: {psutil.getloadavg()[0]:.1f}")
    print(
        "| Backend | Objects held | Client | Emulator CPU ms/upload"
        " | Client CPU ms/upload | Wall ms |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for backend in ("memory", "filesystem"):
        for row in measure(backend, data, args.objects, args.step):
            print(
                f"| {row['backend']} | {row['held']:,} | {row['client']} | "
                f"{row['server_ms']:.2f} | {row['client_ms']:.2f} | {row['wall_ms']:.2f} |"
            )
    print(f"load average after: {psutil.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
