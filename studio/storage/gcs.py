"""The bucket behind one small adapter (google-cloud-storage).

Object names come only from `studio.storage.layout`; this module knows how
objects are written: their Content-Type and Cache-Control (which the CDN
honours), idempotency, timeouts and retries.

Objects are written by one multipart request each (metadata and bytes),
built by the library's own upload class (what Blob.upload_from_* does
underneath, without the Blob per call, its tracing spans and its response
parsing) and sent with libcurl (pycurl), one kept-alive handle per thread,
with the headers of the client's credentials (google-auth): an upload costs
the worker less than half the CPU it did through urllib3's Python HTTP code
(docs/benchmarks.md), at a few hundred uploads a second. Reads, listings,
copies and deletes (rare) go through the client.

One client per process (it holds a connection pool and is thread-safe for
uploads); a forked child builds its own, since sockets must not be shared
across a fork. With STORAGE_EMULATOR_HOST set (development, tests) the
client talks to the emulator anonymously, as the project "test".
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import certifi
import pycurl
import urllib3
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.urllib3 import Request as AuthRequest
from google.cloud import storage
from google.cloud.storage._media._upload import MultipartUpload
from google.cloud.storage.retry import _should_retry

from studio import metrics
from studio.storage import layout

log = logging.getLogger(__name__)

SEGMENT_CONTENT_TYPE = "video/mp2t"
PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"
# A segment never changes once written: cache it everywhere, for a year.
SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"
# A replay is complete when written; it is rewritten only in the rare case of
# a segment arriving late, so a day (not "immutable") is the honest bound.
REPLAY_CACHE_CONTROL = "public, max-age=86400"
THUMBNAIL_CONTENT_TYPE = "image/jpeg"
# The live thumbnail is rewritten about every 10 s (workers.pipeline.thumbnails): a
# shared link's preview or the home page may be that much behind, no more.
LIVE_THUMBNAIL_CACHE_CONTROL = "public, max-age=10"
# A broadcast's thumbnail is written once (if_generation_match=0).
BROADCAST_THUMBNAIL_CACHE_CONTROL = SEGMENT_CACHE_CONTROL
# (connect, read) seconds per HTTP request; a retry policy bounds the total.
REQUEST_TIMEOUT = (3.05, 15)
RETRY_BUDGET = 12.0  # seconds of backoff/retries per upload (5xx, 429, resets); < sync lock TTL


def _retry(kind: str) -> Retry:
    """The library's retry rule (5xx, 429, connection errors; exponential
    backoff) within RETRY_BUDGET, counting each retried attempt."""
    return Retry(
        predicate=_should_retry,
        timeout=RETRY_BUDGET,
        on_error=lambda _exc: metrics.UPLOAD_RETRIES.labels(kind).inc(),
    )


class StorageError(Exception):
    """An object could not be written (after retries) or read."""


class StorageConflict(StorageError):
    """An immutable object already exists with different content."""


def live_cache_control(fragment_seconds: float) -> str:
    """Cache-Control of the live playlist: at most half a target duration, so
    a viewer never sees a playlist older than half a segment."""
    return f"public, max-age={max(0, int(fragment_seconds / 2))}"


@dataclass(frozen=True)
class StoredObject:
    name: str
    size: int
    generation: int | None


class Storage:
    """Writes the studio's objects into the media bucket; objects of private
    streams (layout.is_private) into the private bucket, if one is set
    (production: a bucket without public access, see docs/cdn.md)."""

    def __init__(
        self,
        client: storage.Client,
        bucket_name: str,
        fragment_seconds: float = 2.0,
        private_bucket_name: str = "",
    ):
        self.client = client
        self.uploads = _uploads(client)
        self.bucket = client.bucket(bucket_name)
        self.private_bucket = client.bucket(private_bucket_name) if private_bucket_name else None
        self.live_cache_control = live_cache_control(fragment_seconds)

    def _bucket(self, object_name: str) -> storage.Bucket:
        if self.private_bucket is not None and layout.is_private(object_name):
            return self.private_bucket
        return self.bucket

    def upload_segment(self, object_name: str, path: Path) -> StoredObject:
        """Upload an MPEG-TS segment once (if_generation_match=0).

        Idempotent: if the object already exists with the same size (an
        earlier attempt that succeeded but was not recorded), that is success.
        Raises StorageConflict if it exists with other content, StorageError
        on any other failure (after retries), FileNotFoundError if `path` is gone.
        """
        data = path.read_bytes()
        try:
            stored = self._upload(
                object_name,
                data,
                SEGMENT_CONTENT_TYPE,
                SEGMENT_CACHE_CONTROL,
                "segment",
                if_generation_match=0,
            )
        except StorageConflict:
            existing = self._metadata(object_name)
            if existing is not None and existing.size == len(data):
                return existing
            raise StorageConflict(f"{object_name} exists with different content") from None
        return stored

    def upload_live_playlist(self, object_name: str, text: str) -> None:
        """Overwrite the live playlist (short caching; see live_cache_control)."""
        self._upload_text(object_name, text, self.live_cache_control)

    def upload_replay_playlist(self, object_name: str, text: str) -> None:
        """Write (or rewrite) a broadcast's VOD playlist, cached long."""
        self._upload_text(object_name, text, REPLAY_CACHE_CONTROL)

    def upload_live_thumbnail(self, object_name: str, jpeg: bytes) -> None:
        """Overwrite the stream's live thumbnail (cached briefly). Raises StorageError."""
        self._upload(
            object_name, jpeg, THUMBNAIL_CONTENT_TYPE, LIVE_THUMBNAIL_CACHE_CONTROL, "thumbnail"
        )

    def upload_broadcast_thumbnail(self, object_name: str, jpeg: bytes) -> bool:
        """Write a broadcast's thumbnail once (immutable). Returns False if it
        was already there (an earlier run: the first frame stays). Raises
        StorageError on any other failure."""
        try:
            self._upload(
                object_name,
                jpeg,
                THUMBNAIL_CONTENT_TYPE,
                BROADCAST_THUMBNAIL_CACHE_CONTROL,
                "thumbnail",
                if_generation_match=0,
            )
        except StorageConflict:
            return False
        return True

    def _upload_text(self, object_name: str, text: str, cache_control: str) -> None:
        # Overwriting with the same bytes is harmless, so retrying is safe.
        self._upload(object_name, text.encode(), PLAYLIST_CONTENT_TYPE, cache_control, "playlist")

    def _upload(
        self,
        object_name: str,
        data: bytes,
        content_type: str,
        cache_control: str,
        kind: str,
        if_generation_match: int | None = None,
    ) -> StoredObject:
        """One multipart upload (JSON API), retried within RETRY_BUDGET, the
        content checked by the bucket against its CRC32C. Raises
        StorageConflict if `if_generation_match` fails, else StorageError."""
        url = (
            f"{self.client._connection.API_BASE_URL}/upload/storage/v1/b/"
            f"{self._bucket(object_name).name}/o?uploadType=multipart&fields=generation,size"
        )
        if if_generation_match is not None:
            url += f"&ifGenerationMatch={if_generation_match}"
        metadata = {"name": object_name, "contentType": content_type, "cacheControl": cache_control}
        # The library's upload class only builds the request (body, CRC32C, headers).
        method, url, body, headers = MultipartUpload(url, checksum="crc32c")._prepare_request(
            data, metadata, content_type
        )
        headers["User-Agent"] = self.client._connection.user_agent

        def send() -> bytes:
            status, reply = self.uploads.send(method, url, body, headers)
            if status != 200:
                raise gexc.from_http_status(status, reply.decode(errors="replace"))
            return reply

        try:
            stored = json.loads(_retry(kind)(send)())
        except gexc.PreconditionFailed:
            raise StorageConflict(f"{object_name} already exists") from None
        except (gexc.GoogleAPIError, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise StorageError(f"upload of {object_name} failed: {exc}") from exc
        generation = stored.get("generation")
        return StoredObject(
            object_name,
            int(stored.get("size", len(data))),
            int(generation) if generation is not None else None,
        )

    def _metadata(self, object_name: str) -> StoredObject | None:
        try:
            blob = self._bucket(object_name).get_blob(
                object_name, timeout=REQUEST_TIMEOUT, retry=_retry("read")
            )
        except gexc.GoogleAPIError as exc:
            raise StorageError(f"reading {object_name} failed: {exc}") from exc
        if blob is None:
            return None
        return StoredObject(object_name, int(blob.size or 0), blob.generation)

    def read_bytes(self, object_name: str) -> bytes | None:
        """An object's content, or None if it does not exist."""
        try:
            return (
                self._bucket(object_name)
                .blob(object_name)
                .download_as_bytes(timeout=REQUEST_TIMEOUT, retry=_retry("read"))
            )
        except gexc.NotFound:
            return None
        except gexc.GoogleAPIError as exc:
            raise StorageError(f"reading {object_name} failed: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose name starts with `prefix` (a folder such
        as layout.stream_prefix(id): non-empty, ending in "/", so a bad
        argument can never empty the bucket). Returns how many were deleted.

        Idempotent: an object already gone (a concurrent or earlier run) is
        not an error. Raises StorageError if listing or a delete fails.
        """
        if not prefix or not prefix.endswith("/") or prefix.startswith("/"):
            raise ValueError(f"refusing to delete under prefix {prefix!r}")
        deleted = 0
        try:
            blobs = list(
                self.client.list_blobs(
                    self._bucket(prefix),
                    prefix=prefix,
                    timeout=REQUEST_TIMEOUT,
                    retry=_retry("read"),
                )
            )
            for blob in blobs:
                try:
                    # Deleting a name twice is harmless, so retrying is safe.
                    blob.delete(timeout=REQUEST_TIMEOUT, retry=_retry("delete"))
                except gexc.NotFound:
                    continue
                deleted += 1
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StorageError(f"deleting under {prefix} failed: {exc}") from exc
        return deleted

    def copy_prefix(self, source: str, target: str) -> int:
        """Copy every object under the folder `source` to the same name under
        `target` (content, Content-Type and Cache-Control kept). Idempotent:
        copying again overwrites with the same bytes. Returns how many."""
        for prefix in (source, target):
            if not prefix or not prefix.endswith("/") or prefix.startswith("/"):
                raise ValueError(f"refusing to copy with prefix {prefix!r}")
        copied = 0
        try:
            blobs = list(
                self.client.list_blobs(
                    self._bucket(source),
                    prefix=source,
                    timeout=REQUEST_TIMEOUT,
                    retry=_retry("read"),
                )
            )
            for blob in blobs:
                name = target + blob.name.removeprefix(source)
                self._bucket(source).copy_blob(
                    blob,
                    self._bucket(name),
                    name,
                    timeout=REQUEST_TIMEOUT,
                    retry=_retry("copy"),
                )
                copied += 1
        except (gexc.GoogleAPIError, OSError) as exc:
            raise StorageError(f"copying {source} to {target} failed: {exc}") from exc
        return copied


class Uploads:
    """Sends uploads with libcurl: one easy handle (and so one kept-alive
    connection) per thread and process, the credentials' headers on each
    request, a refresh and one more try on a 401 (as google-auth's own
    transports do)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._local = threading.local()
        self._auth_request: AuthRequest | None = None

    def send(self, method: str, url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        """(status, body) of the reply. Raises ConnectionError (which the
        retry rule retries) when no reply came: refused, reset, timed out."""
        for attempt in range(2):
            sent = dict(headers)
            self.credentials.before_request(self._auth(), method, url, sent)
            status, reply = self._perform(method, url, body, sent)
            if status != 401 or attempt or isinstance(self.credentials, AnonymousCredentials):
                break
            self.credentials.refresh(self._auth())
        return status, reply

    def _perform(self, method: str, url: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        handle, reply = self._handle(), io.BytesIO()
        handle.setopt(pycurl.CUSTOMREQUEST, method)
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.POSTFIELDS, body)
        # "Expect:" off: curl would wait for a 100 Continue before the body.
        lines = [f"{k}: {v.decode() if isinstance(v, bytes) else v}" for k, v in headers.items()]
        handle.setopt(pycurl.HTTPHEADER, [*lines, "Expect:"])
        handle.setopt(pycurl.WRITEDATA, reply)
        try:
            handle.perform()
        except pycurl.error as exc:
            raise ConnectionError(f"{method} {url.split('?')[0]}: {exc.args[-1]}") from None
        return handle.getinfo(pycurl.RESPONSE_CODE), reply.getvalue()

    def _handle(self) -> pycurl.Curl:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            if hasattr(local, "handle"):
                # Inherited across a fork: its socket is the parent's; freeing
                # the handle here would close the parent's connection.
                _inherited.append(local.handle)
            handle = pycurl.Curl()
            handle.setopt(pycurl.NOSIGNAL, 1)  # threads: no SIGALRM for timeouts
            handle.setopt(pycurl.CAINFO, certifi.where())
            handle.setopt(pycurl.CONNECTTIMEOUT_MS, int(REQUEST_TIMEOUT[0] * 1000))
            # Like a read timeout: give up when nothing moved for that long.
            handle.setopt(pycurl.LOW_SPEED_LIMIT, 1)
            handle.setopt(pycurl.LOW_SPEED_TIME, int(REQUEST_TIMEOUT[1]))
            local.handle, local.pid = handle, os.getpid()
        return local.handle

    def _auth(self) -> AuthRequest:
        if self._auth_request is None:  # token refreshes only: rare
            self._auth_request = AuthRequest(urllib3.PoolManager())
        return self._auth_request


_lock = threading.Lock()
_clients: dict[tuple[int, str, str], storage.Client] = {}
_transports: weakref.WeakKeyDictionary[storage.Client, Uploads] = weakref.WeakKeyDictionary()
_inherited: list[pycurl.Curl] = []


def _uploads(client: storage.Client) -> Uploads:
    """The upload transport of `client` (its credentials), made once."""
    with _lock:
        transport = _transports.get(client)
        if transport is None:
            transport = _transports[client] = Uploads(client._credentials)
    return transport


def make_client(emulator_host: str = "") -> storage.Client:
    """A storage client: anonymous against the emulator, else the ambient
    service account (Application Default Credentials)."""
    if emulator_host:
        # The endpoint is given to this client only: no process-wide side effect.
        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": emulator_host},
        )
    else:
        client = storage.Client()
    if not any(key.lower().endswith("_proxy") for key in os.environ):
        # requests otherwise scans the whole environment for proxy settings
        # on every request: about a millisecond of CPU per upload.
        client._http.trust_env = False
    return client


def get_storage(config: Mapping) -> Storage:
    """The process's Storage for `config` (GCS_BUCKET, STORAGE_EMULATOR_HOST,
    HLS_FRAGMENT); the client is created once per process."""
    emulator = config.get("STORAGE_EMULATOR_HOST", "") or ""
    key = (os.getpid(), emulator, config["GCS_BUCKET"])
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = make_client(emulator)
            _clients[key] = client
    return Storage(
        client,
        config["GCS_BUCKET"],
        float(config.get("HLS_FRAGMENT", 2.0)),
        config.get("GCS_PRIVATE_BUCKET", "") or "",
    )
