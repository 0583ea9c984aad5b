"""Upload throughput of the worker model, against fake-gcs-server.

    .venv/bin/python bench/uploads.py [--streams 400] [--segments 1] [--workers 3]

Lays out `streams` x `segments` real MPEG-TS files (one playlist per stream)
in a local HLS directory, queues one sync per stream and starts the RQ worker
pool of devtools/runner.py; reports uploads per second (segments + live
playlists) until every local file is gone. `--segments 1` is the live steady
state (each job uploads one segment and one playlist); more is a backlog.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import runner  # noqa: E402
from devtools.services import (  # noqa: E402
    create_database,
    ensure_postgres,
    start_fake_gcs,
    start_redis,
)
from tests import launch, stack  # noqa: E402


def make_segment(directory: Path) -> Path:
    """One 2-second 720p-ish H.264/AAC segment (about 300 KB)."""
    out = directory / "sample.ts"
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=1280x720:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-b:v",
        "1200k",
        "-g",
        "60",
        "-c:a",
        "aac",
        "-f",
        "mpegts",
        str(out),
    ]
    subprocess.run(argv, check=True)
    return out


def seed(env: dict, streams: int) -> list[str]:
    """Create a user and `streams` streams, each with an open broadcast."""
    os.environ.update(env)
    from studio import create_app
    from studio.auth import service as accounts
    from studio.extensions import db
    from studio.streams import service

    app = create_app()
    names = []
    with app.app_context():
        email = f"bench-{secrets.token_hex(3)}@example.com"
        user = accounts.create_user(db.session, email, secrets.token_urlsafe(12))
        for i in range(streams):
            stream = service.create_stream(db.session, user, f"bench {i}")
            attempt = service.PublishAttempt(
                stream.public_id, stream.stream_key, f"c{i}", "rtmp", server_id="nginx-rtmp"
            )
            service.start_broadcast(db.session, attempt)
            names.append(stream.public_id)
        db.session.commit()
    return names


def lay_out(hls_dir: Path, names: list[str], segments: int, sample: Path) -> int:
    live = hls_dir / "live"
    live.mkdir(parents=True, exist_ok=True)
    for name in names:
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-TARGETDURATION:2",
        ]
        for n in range(segments):
            shutil.copyfile(sample, live / f"{name}-{n}.ts")
            lines += ["#EXTINF:2.000,", f"{name}-{n}.ts"]
        (live / f"{name}.m3u8").write_text("\n".join(lines) + "\n")
    return len(names) * segments


def wait_for_workers(connection, count: int, hls_dir: Path) -> None:
    """Until every worker process has imported the app and the storage client
    (a warm-up job per worker), so start-up is not part of the measurement."""
    from rq import Worker

    deadline = time.monotonic() + 60
    while len(Worker.all(connection=connection)) < count:
        if time.monotonic() > deadline:
            raise SystemExit("workers did not start")
        time.sleep(0.1)
    from studio.media.pipeline import request_sync

    warm = [f"warmup{i}" for i in range(count * 3)]
    for name in warm:
        request_sync(connection, name)  # unknown streams: a full no-upload pass each
    while connection.llen("rq:queue:uploads"):
        time.sleep(0.05)
    time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--segments", type=int, default=1)
    parser.add_argument("--workers", type=int, default=launch.DEFAULT_WORKERS)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="bench-uploads-", dir=ROOT / "var"))
    services = []
    try:
        postgres = ensure_postgres(var, database="postgres")
        dbname = f"bench_{secrets.token_hex(4)}"
        create_database(postgres.url, dbname)
        services.append(start_redis(var))
        gcs = start_fake_gcs(var)
        services.append(gcs)
        env = runner.studio_env(
            database_url=postgres.url.rsplit("/", 1)[0] + "/" + dbname,
            redis_url=services[0].url,
            gcs=gcs,
            nginx=None,
            public_url="http://127.0.0.1:9",
            secret_key=secrets.token_urlsafe(16),
            hook_token=secrets.token_urlsafe(16),
            hls_dir=var / "hls",
            extra={"STUDIO_LOG_LEVEL": "WARNING", "STUDIO_MAX_LIVE_PER_USER": "0"},
        )
        launch.migrate(env)
        names = seed(env, args.streams)
        files = lay_out(var / "hls", names, args.segments, make_segment(var))
        import redis as redis_lib

        from studio.media.pipeline import request_sync

        connection = redis_lib.Redis.from_url(env["REDIS_URL"])
        live = var / "hls" / "live"
        workers = stack.start_workers(env, var, args.workers)
        services.append(workers)
        wait_for_workers(connection, args.workers, var / "hls")
        started = time.monotonic()
        for name in names:
            request_sync(connection, name)
        while any(live.glob("*.ts")):
            if time.monotonic() - started > 600:
                raise SystemExit("timed out")
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        uploads = files + len(names)
        print(
            f"{args.workers} workers, {len(names)} streams x {args.segments} segments: "
            f"{uploads} uploads in {elapsed:.2f}s = {uploads / elapsed:.0f} uploads/s "
            f"({files / elapsed:.0f} segments/s)"
        )
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(var, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
