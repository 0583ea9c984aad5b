"""Fixtures for the upload pipeline: a real fake-gcs-server, real MPEG-TS
segments made by ffmpeg, and a local HLS directory laid out as SRS 5 and
nginx-rtmp write it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from devtools.services import create_bucket, start_fake_gcs
from studio.storage import gcs
from studio.streams import service as streams
from tests.conftest import FIXTURES, VAR

SEGMENT_SECONDS = 2


@pytest.fixture(scope="session")
def fake_gcs():
    service = start_fake_gcs(VAR)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def ts_segments(tmp_path_factory) -> list[Path]:
    """Eight 2-second H.264/AAC MPEG-TS segments cut by ffmpeg's HLS muxer."""
    directory = tmp_path_factory.mktemp("segments")
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x180:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        str(8 * SEGMENT_SECONDS),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "hls",
        "-hls_time",
        str(SEGMENT_SECONDS),
        "-hls_list_size",
        "0",
        "-hls_segment_filename",
        str(directory / "seg-%d.ts"),
        str(directory / "seg.m3u8"),
    ]
    subprocess.run(argv, check=True, timeout=120)
    return [directory / f"seg-{n}.ts" for n in range(8)]


@dataclass
class HlsDir:
    """A local HLS directory for one stream, as the engine leaves it."""

    root: Path
    stream: str
    segments: list[Path]

    @property
    def live(self) -> Path:
        return self.root / "live"

    def segment_path(self, number: int) -> Path:
        return self.live / f"{self.stream}-{number}.ts"

    def add_segment(self, number: int, mtime: float | None = None, source: int | None = None):
        path = self.segment_path(number)
        shutil.copyfile(self.segments[(number if source is None else source) % 8], path)
        stamp = time.time() if mtime is None else mtime
        os.utime(path, (stamp, stamp))
        return path

    def write_fixture_playlist(self) -> str:
        """tests/fixtures/srs5/live_stream.m3u8 (SRS 5, segments 1..6) for this stream."""
        text = (FIXTURES / "live_stream.m3u8").read_text().replace("sk_test123", self.stream)
        (self.live / f"{self.stream}.m3u8").write_text(text)
        return text

    def write_playlist(self, numbers: list[int], durations: dict[int, float] | None = None):
        durations = durations or {}
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-MEDIA-SEQUENCE:{numbers[0]}",
            "#EXT-X-TARGETDURATION:2",
        ]
        for number in numbers:
            lines += [f"#EXTINF:{durations.get(number, 2.0):.3f},", f"{self.stream}-{number}.ts"]
        (self.live / f"{self.stream}.m3u8").write_text("\n".join(lines) + "\n")

    def local_names(self) -> list[str]:
        """The stream's segments on disk (other streams share the directory)."""
        return sorted(p.name for p in self.live.glob(f"{self.stream}-*.ts"))


@pytest.fixture()
def pipeline_app(app, db, redis, fake_gcs, tmp_path, monkeypatch):
    """The test app pointed at fake-gcs-server (a fresh bucket per test) and
    a fresh local HLS directory. Upload retries are cut to one second so a
    bucket that is down fails fast."""
    bucket = f"media-{os.urandom(4).hex()}"
    create_bucket(fake_gcs.url, bucket)
    monkeypatch.setitem(app.config, "STORAGE_EMULATOR_HOST", fake_gcs.url)
    monkeypatch.setitem(app.config, "GCS_BUCKET", bucket)
    monkeypatch.setitem(app.config, "HLS_DIR", str(tmp_path / "hls"))
    monkeypatch.setitem(app.config, "HLS_FRAGMENT", 2.0)
    monkeypatch.setattr(gcs, "RETRY_BUDGET", 1.0)
    (tmp_path / "hls" / "live").mkdir(parents=True)
    return app


@pytest.fixture()
def bucket(pipeline_app, fake_gcs):
    """Read objects back from the emulator: get(name) -> (status, headers, body)."""

    class Bucket:
        name = pipeline_app.config["GCS_BUCKET"]

        def get(self, object_name: str):
            reply = requests.get(f"{fake_gcs.url}/{self.name}/{object_name}", timeout=10)
            return reply.status_code, reply.headers, reply.content

        def put(self, object_name: str, data: bytes):
            blob = gcs.make_client(fake_gcs.url).bucket(self.name).blob(object_name)
            blob.upload_from_string(data)
            return blob

    return Bucket()


@pytest.fixture()
def make_live_stream(pipeline_app, db, make_stream, ts_segments, tmp_path):
    """Streams with an open broadcast and an empty local HLS directory."""

    def factory():
        stream = make_stream()
        broadcast = streams.start_broadcast(
            db.session,
            streams.PublishAttempt(
                stream_name=stream.public_id,
                secret=stream.stream_key,
                client_id="client-1",
                protocol="rtmp",
                server_id="nginx-rtmp",
            ),
        )
        # It went live a minute ago: the test's segments were written since.
        broadcast.started_at = broadcast.started_at - timedelta(minutes=1)
        db.session.commit()
        hls = HlsDir(tmp_path / "hls", stream.public_id, ts_segments)
        return stream, broadcast, hls

    return factory


@pytest.fixture()
def live_stream(make_live_stream):
    """A stream with an open broadcast and an empty local HLS directory."""
    return make_live_stream()
