"""The storage adapter's upload transport (libcurl): against the real
fake-gcs-server, and a local HTTP server standing in for Cloud Storage where
the emulator cannot answer (it takes no credentials)."""

from __future__ import annotations

import hashlib
import http.server
import multiprocessing
import threading

import pycurl
import pytest
from google.auth.credentials import Credentials
from google.cloud.storage.retry import _should_retry

from devtools.process import free_port
from devtools.services import create_bucket, start_fake_gcs
from studio.storage import gcs
from tests.conftest import VAR


@pytest.fixture(scope="module")
def emulator():
    service = start_fake_gcs(VAR)
    create_bucket(service.url, "uploads-test")
    yield service
    service.stop()


@pytest.fixture
def storage(emulator) -> gcs.Storage:
    return gcs.Storage(gcs.make_client(emulator.url), "uploads-test")


def test_bytes_arrive_whole(storage, tmp_path):
    """Every byte of a segment reaches the bucket, NUL bytes and CR/LF
    included, under its Content-Type and Cache-Control."""
    data = bytes(range(256)) * 4000 + b"\0\r\n\0"  # about 1 MB
    path = tmp_path / "0.ts"
    path.write_bytes(data)
    stored = storage.upload_segment("live/a/1/0.ts", path)
    assert stored.size == len(data)
    blob = storage.bucket.get_blob("live/a/1/0.ts")
    assert hashlib.sha256(blob.download_as_bytes()).digest() == hashlib.sha256(data).digest()
    assert (blob.content_type, blob.cache_control) == (
        gcs.SEGMENT_CONTENT_TYPE,
        gcs.SEGMENT_CACHE_CONTROL,
    )


def test_second_upload_of_an_immutable_object_is_a_conflict(storage):
    """ifGenerationMatch=0 travels with the request: a broadcast thumbnail
    is written once and the second write reports it was there."""
    assert storage.upload_broadcast_thumbnail("live/a/1/thumbnail.jpg", b"\xff\xd8one") is True
    assert storage.upload_broadcast_thumbnail("live/a/1/thumbnail.jpg", b"\xff\xd8two") is False
    assert storage.read_bytes("live/a/1/thumbnail.jpg") == b"\xff\xd8one"


def test_no_server_is_a_retryable_connection_error():
    """A refused connection raises ConnectionError, which the library's
    retry rule retries (the pass then keeps the segment for a retry)."""
    uploads = gcs.Uploads(gcs.AnonymousCredentials())
    url = f"http://127.0.0.1:{free_port()}/upload"
    with pytest.raises(ConnectionError) as caught:
        uploads.send("POST", url, b"x", {"content-type": "text/plain"})
    assert _should_retry(caught.value)


def test_a_failed_upload_raises_storage_error_and_counts_retries(monkeypatch):
    """With the bucket unreachable the upload gives up within its retry
    budget with StorageError naming the object."""
    monkeypatch.setattr(gcs, "RETRY_BUDGET", 1.0)
    client = gcs.make_client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(gcs.StorageError, match="live/a/playlist.m3u8"):
        gcs.Storage(client, "b").upload_live_playlist("live/a/playlist.m3u8", "#EXTM3U\n")


class _Token(Credentials):
    """Credentials whose token changes on each refresh (Cloud Storage's
    OAuth tokens cannot be had here)."""

    def __init__(self) -> None:
        super().__init__()
        self.token, self.refreshes = "stale", 0

    def refresh(self, request) -> None:
        self.refreshes += 1
        self.token = f"fresh-{self.refreshes}"

    @property
    def expired(self) -> bool:
        return False


def test_a_401_refreshes_the_token_and_tries_once_more():
    """A rejected token is refreshed and the request sent again with the
    new one, once; the body arrives whole both times."""
    seen: list[tuple[str, bytes]] = []

    class Bucket(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.headers["Authorization"], body))
            status = 200 if self.headers["Authorization"] == "Bearer fresh-1" else 401
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bucket)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        credentials = _Token()
        uploads = gcs.Uploads(credentials)
        url = f"http://127.0.0.1:{server.server_address[1]}/upload"
        status, _ = uploads.send("POST", url, b"a\0b", {"content-type": b"text/plain"})
    finally:
        server.shutdown()
    assert status == 200
    assert credentials.refreshes == 1
    assert seen == [("Bearer stale", b"a\0b"), ("Bearer fresh-1", b"a\0b")]


def _local_port(storage: gcs.Storage) -> int:
    """The local port of this thread's connection to the bucket."""
    return storage.uploads._handle().getinfo(pycurl.LOCAL_PORT)


def _upload_in_child(storage: gcs.Storage, results) -> None:
    storage.upload_live_thumbnail("live/a/child.jpg", b"\xff\xd8child")
    results.put(_local_port(storage))


def test_a_forked_child_uploads_on_its_own_connection(storage):
    """A child forked after the parent uploaded opens its own connection:
    both go on uploading."""
    storage.upload_live_thumbnail("live/a/parent.jpg", b"\xff\xd8one")
    parent_port = _local_port(storage)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_upload_in_child, args=(storage, results))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert results.get(timeout=5) != parent_port
    storage.upload_live_thumbnail("live/a/parent.jpg", b"\xff\xd8two")
    assert _local_port(storage) == parent_port  # kept alive, never closed by the child
    assert storage.read_bytes("live/a/child.jpg") == b"\xff\xd8child"
    assert storage.read_bytes("live/a/parent.jpg") == b"\xff\xd8two"
