"""The media pipeline under N live publishers.

    .venv/bin/python bench/pipeline.py --publishers 50 100 [--seconds 40] [--workers 3]

For each N: the whole studio (as `make dev`, on free ports, throwaway
database), N `ffmpeg -re -stream_loop -1 -i FILE -c copy` RTMP publishers
into nginx-rtmp for a fixed time, then stop them and let the pipeline drain.
Reports, per N:

- upload lag, segment closed on disk (inotify CLOSE_WRITE) -> object in the
  bucket (its row committed after the upload), for every segment;
- edge lag, closed on disk -> object readable through the CDN edge, polled
  every 100 ms for a sample of streams;
- first playable: publisher's start (the ffmpeg process) -> live playlist
  readable at the edge (sample) and -> first segment in the bucket (all
  streams); and publish accepted (the broadcast's start, written by the
  studio's on_publish) -> first segment in the bucket, the encoder's own
  start-up left out;
- worker CPU (the RQ pool, in cores), queue depth, files left on disk;
- lost segments: closed on disk but never recorded, or a hole in a replay.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from inotify_simple import INotify  # noqa: E402
from inotify_simple import flags as iflags  # noqa: E402

from devtools import runner  # noqa: E402
from devtools.nginx import start_nginx  # noqa: E402
from devtools.process import free_port  # noqa: E402
from devtools.services import (  # noqa: E402
    create_database,
    ensure_postgres,
    start_fake_gcs,
    start_redis,
)
from tests import launch, stack  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from machine import machine  # noqa: E402

SAMPLE = 5  # streams probed through the edge (every 100 ms: the probe costs CPU too)


def make_source(var: Path) -> Path:
    """20 s of 640x360 H.264 (2 s GOP) + AAC in FLV, looped by the publishers."""
    path = var / "source.flv"
    argv = [
        "ffmpeg",
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=640x360:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "20",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        "800k",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "flv",
        str(path),
    ]
    subprocess.run(argv, check=True)
    return path


class Studio:
    """Redis, fake-gcs-server (in memory), nginx, gunicorn, workers,
    watcher. With
    `nodes`: media nodes node-1..node-N (STUDIO_MEDIA_NODES), each with its
    own nginx-rtmp, HLS directory, watcher and `workers` upload workers
    (`stack.start_node`); then the studio's own workers (one) take the
    shared queues only and its nginx is the edge."""

    def __init__(
        self,
        var: Path,
        workers: int,
        engine: str = "nginx-rtmp",
        fragment: float = 2.0,
        nodes: int = 0,
        bucket: str = "memory",
    ):
        self.var, self.services, self.handles = var, [], {}
        self.node_ids = [f"node-{n}" for n in range(1, nodes + 1)]
        postgres = ensure_postgres(var, database="postgres")
        self.dbname = f"bench_{secrets.token_hex(4)}"
        self.server_url = postgres.url
        create_database(postgres.url, self.dbname)
        redis_service = start_redis(var)
        # `bucket` is the emulator's backend. "memory": cheaper per upload
        # than "filesystem" up to about a thousand objects, but its CPU per
        # upload grows with the objects it holds (about 0.85 ms more per
        # thousand, `bench/bucket_emulator.py`), so larger runs charge the
        # pipeline for the emulator; "filesystem" stays flat (its objects in
        # `var`: on a disk each upload costs it two fsyncs).
        gcs = start_fake_gcs(var, backend=bucket)
        self.services += [redis_service, gcs]
        port = free_port()
        token = secrets.token_urlsafe(16)
        hook_url = f"http://127.0.0.1:{port}/hooks/{engine}?token={token}"
        self.hook_url = hook_url
        self.nginx = start_nginx(
            var, hook_url=hook_url, gcs_url=gcs.url, bucket=gcs.bucket, hls_fragment=fragment
        )
        self.services.append(self.nginx)
        self.env = runner.studio_env(
            database_url=postgres.url.rsplit("/", 1)[0] + "/" + self.dbname,
            redis_url=redis_service.url,
            gcs=gcs,
            nginx=self.nginx,
            public_url=f"http://127.0.0.1:{port}",
            secret_key=secrets.token_urlsafe(16),
            hook_token=token,
            engine=engine,
            extra={
                "STUDIO_LOG_LEVEL": "WARNING",
                "STUDIO_MAX_LIVE_PER_USER": "0",
                # No SRS API behind the simulated engine: drops fail fast.
                "STUDIO_SRS_API_URL": "http://127.0.0.1:9",
                **self._nodes_setting(),
            },
        )
        launch.migrate(self.env)
        self.handles["gunicorn"] = stack.start_gunicorn(self.env, var, port, threads=32)
        shared = 1 if self.node_ids else workers
        self.handles["workers"] = stack.start_workers(self.env, var, shared)
        if not self.node_ids:
            self.handles["watcher"] = stack.start_watcher(self.env, var)
        self.nodes = [
            stack.start_node(self.env, var, node_id, hook_url=hook_url, workers=workers)
            for node_id in self.node_ids
        ]
        self.services += self.nodes
        # Where live segments wait: every node's queue, or the one queue.
        self.segment_queues = [launch.node_queues(n.env)[0] for n in self.nodes] or ["uploads"]
        from studio import config, create_app

        self.app = create_app(config.from_environ(self.env))

    def _nodes_setting(self) -> dict[str, str]:
        """STUDIO_MEDIA_NODES for the nodes (no engine API behind them)."""
        if not self.node_ids:
            return {}
        pool = [
            {"id": n, "api_url": "http://127.0.0.1:9", "ingest_host": "", "capacity": 0}
            for n in self.node_ids
        ]
        return {"STUDIO_MEDIA_NODES": json.dumps(pool)}

    def seed(self, count: int) -> list[tuple[str, str]]:
        from studio.auth import service as accounts
        from studio.extensions import db
        from studio.streams import service

        with self.app.app_context():
            user = accounts.create_user(
                db.session, f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
            )
            # No reconnect window: each broadcast ends (and its replay is
            # written) when its publisher stops, as the benchmark measures.
            streams = [
                service.create_stream(db.session, user, f"bench {i}", reconnect_window=0)
                for i in range(count)
            ]
            db.session.commit()
            return [(s.public_id, s.stream_key) for s in streams]

    def broadcast_id(self, public_id: str) -> int | None:
        from sqlalchemy import select

        from studio.extensions import db
        from studio.models import Broadcast, Stream

        with self.app.app_context():
            found = db.session.scalar(
                select(Broadcast.id).join(Stream).where(Stream.public_id == public_id)
            )
            db.session.remove()
        return found

    def broadcasts(self) -> dict[str, dict]:
        """public_id -> {id, started, replay_ready, segments: {number: uploaded_at}}."""
        from sqlalchemy import select

        from studio.extensions import db
        from studio.models import Broadcast, Segment, Stream

        with self.app.app_context():
            rows = db.session.execute(
                select(
                    Stream.public_id, Broadcast.id, Broadcast.started_at, Broadcast.replay_ready_at
                ).join(Broadcast, Broadcast.stream_id == Stream.id)
            ).all()
            result = {
                public_id: {
                    "id": broadcast,
                    "started": started.timestamp(),
                    "replay_ready": ready is not None,
                    "segments": {},
                }
                for public_id, broadcast, started, ready in rows
            }
            by_id = {v["id"]: v for v in result.values()}
            for bid, number, uploaded in db.session.execute(
                select(Segment.broadcast_id, Segment.sequence, Segment.uploaded_at)
            ):
                by_id[bid]["segments"][number] = uploaded.timestamp()
            db.session.remove()
        return result

    def stop(self) -> None:
        for handle in reversed(list(self.handles.values())):
            handle.stop()
        for service in reversed(self.services):
            service.stop()
        with self.app.app_context():
            from studio.extensions import db

            db.engine.dispose()
        stack.drop_database(self.server_url, self.dbname)


class DiskWatch(threading.Thread):
    """When each segment file was closed by nginx-rtmp."""

    def __init__(self, live: Path):
        super().__init__(daemon=True)
        self.closed: dict[str, float] = {}
        self.by_stream: dict[str, list[str]] = {}
        self.inotify = INotify()
        self.inotify.add_watch(str(live), iflags.CLOSE_WRITE)
        self.running = True

    def run(self) -> None:
        while self.running:
            for event in self.inotify.read(timeout=200):
                if event.name.endswith(".ts") and event.name not in self.closed:
                    self.closed[event.name] = time.time()
                    stream = event.name.rsplit("-", 1)[0]
                    self.by_stream.setdefault(stream, []).append(event.name)


class Sampler(threading.Thread):
    """Queue depth and worker CPU every half second."""

    def __init__(self, studio: Studio):
        super().__init__(daemon=True)
        import redis

        self.studio = studio
        self.redis = redis.Redis.from_url(studio.env["REDIS_URL"])
        self.pgid = studio.handles["workers"].process.pid
        self.depths: list[int] = []
        self.running = True

    def cpu_seconds(self) -> float:
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.pgid:  # process group
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def run(self) -> None:
        while self.running:
            queues = self.studio.segment_queues
            self.depths.append(sum(self.redis.llen(f"rq:queue:{q}") for q in queues))
            time.sleep(0.5)


class EdgeProbe(threading.Thread):
    """For sampled streams: when the live playlist and each closed segment
    become readable through the CDN edge."""

    def __init__(self, studio: Studio, disk: DiskWatch, sample: dict[str, float]):
        super().__init__(daemon=True)
        self.studio, self.disk, self.sample = studio, disk, sample  # public_id -> publish start
        self.first_playable: dict[str, float] = {}
        self.lags: list[float] = []
        self.seen: set[str] = set()
        self.broadcast: dict[str, int] = {}
        self.running = True
        # One kept-alive connection, as a player has: a new connection per
        # poll made the probe itself slow on a busy machine.
        self.http = requests.Session()

    def run(self) -> None:
        edge = self.studio.nginx.edge_url
        while self.running:
            for public_id, started in list(self.sample.items()):  # grows at start
                if public_id not in self.first_playable:
                    playlist = self.http.get(f"{edge}/live/{public_id}/index.m3u8", timeout=10)
                    if playlist.status_code == 200:
                        self.first_playable[public_id] = time.time() - started
                self._segments(edge, public_id)
            time.sleep(0.1)

    def _segments(self, edge: str, public_id: str) -> None:
        if public_id not in self.broadcast:
            found = self.studio.broadcast_id(public_id)
            if found is None:
                return
            self.broadcast[public_id] = found
        for name in list(self.disk.by_stream.get(public_id, ())):
            if name in self.seen:
                continue
            number = name[len(public_id) + 1 : -3]
            url = f"{edge}/live/{public_id}/{self.broadcast[public_id]}/{number}.ts"
            if self.http.head(url, timeout=10).status_code == 200:
                self.seen.add(name)
                self.lags.append(time.time() - self.disk.closed[name])


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(count: int, seconds: float, workers: int, source: Path) -> dict:
    var = Path(ROOT / "var" / f"bench-pipeline-{count}-{secrets.token_hex(2)}")
    var.mkdir(parents=True)
    studio = Studio(var, workers)
    publishers: list[subprocess.Popen] = []
    try:
        streams = studio.seed(count)
        disk = DiskWatch(studio.nginx.hls_dir / "live")
        disk.start()
        sampler = Sampler(studio)
        sampler.start()
        cpu_before, started_at = sampler.cpu_seconds(), time.time()
        starts: dict[str, float] = {}
        # Real publishers do not start in the same millisecond: spread the
        # starts over one fragment, so segment closes are spread the same way.
        spread = 2.0 / max(1, len(streams))
        # The probe runs from the first publisher on: started after them all,
        # it saw its sample's first segments late (and counted that as lag).
        probe = EdgeProbe(studio, disk, {})
        probe.start()
        for public_id, key in streams:
            time.sleep(spread)
            argv = [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(source),
                "-c",
                "copy",
                "-f",
                "flv",
                f"{studio.nginx.rtmp_url}/{public_id}?secret={key}",
            ]
            starts[public_id] = time.time()
            if len(probe.sample) < SAMPLE:
                probe.sample[public_id] = starts[public_id]
            quiet = {
                "stdin": subprocess.DEVNULL,
                "stdout": subprocess.DEVNULL,
                "stderr": subprocess.DEVNULL,
            }
            # nice 10: in production publishers are other machines; here they
            # share 2 cores with the pipeline and must not starve it.
            publishers.append(subprocess.Popen(argv, **quiet, preexec_fn=lambda: os.nice(10)))
        time.sleep(seconds)
        cpu_live = sampler.cpu_seconds() - cpu_before
        rig = sum(_cpu_of(p.pid) for p in publishers) / (time.time() - started_at)
        live_seconds = time.time() - started_at
        for process in publishers:
            process.send_signal(signal.SIGTERM)
        for process in publishers:
            process.wait(30)
        deadline = time.time() + 180
        while time.time() < deadline:
            state = studio.broadcasts()
            if len(state) == count and all(b["replay_ready"] for b in state.values()):
                break
            time.sleep(1)
        time.sleep(1)
        probe.running = sampler.running = disk.running = False
        result = report(
            count, seconds, workers, studio, disk, sampler, probe, starts, cpu_live / live_seconds
        )
        return {**result, "publisher_cores": rig}
    finally:
        for process in publishers:
            if process.poll() is None:
                process.kill()
        studio.stop()
        shutil.rmtree(var, ignore_errors=True)


def report(count, seconds, workers, studio, disk, sampler, probe, starts, cores) -> dict:
    state = studio.broadcasts()
    lags, lost, first, first_accepted = [], 0, [], []
    for name, closed in disk.closed.items():
        public_id, number = name[:-3].rsplit("-", 1)
        uploaded = state.get(public_id, {}).get("segments", {}).get(int(number))
        if uploaded is None:
            lost += 1
        else:
            lags.append(max(0.0, uploaded - closed))
            if uploaded - closed > 1 and os.environ.get("BENCH_DEBUG"):
                print("slow", name, round(uploaded - closed, 2), file=sys.stderr)
    holes = 0
    for public_id, broadcast in state.items():
        numbers = sorted(broadcast["segments"])
        holes += (numbers[-1] - numbers[0] + 1 - len(numbers)) if numbers else 0
        if numbers:
            first.append(broadcast["segments"][numbers[0]] - starts[public_id])
            first_accepted.append(broadcast["segments"][numbers[0]] - broadcast["started"])
    left = len(list((studio.nginx.hls_dir / "live").glob("*.ts")))
    return {
        "publishers": count,
        "seconds": seconds,
        "workers": workers,
        "segments": len(disk.closed),
        "lost": lost,
        "holes": holes,
        "left_on_disk": left,
        "replays": sum(b["replay_ready"] for b in state.values()),
        "lag_p50": pct(lags, 0.5),
        "lag_p95": pct(lags, 0.95),
        "lag_max": max(lags or [0]),
        "edge_lag_p50": pct(probe.lags, 0.5),
        "edge_lag_p95": pct(probe.lags, 0.95),
        "edge_lag_max": max(probe.lags or [0]),
        "edge_samples": len(probe.lags),
        "first_bucket_p50": pct(first, 0.5),
        "first_bucket_max": max(first or [0]),
        "first_after_publish_p50": pct(first_accepted, 0.5),
        "first_after_publish_max": max(first_accepted or [0]),
        "first_edge_p50": pct(list(probe.first_playable.values()), 0.5),
        "first_edge_max": max(probe.first_playable.values() or [0]),
        "worker_cores": cores,
        "queue_max": max(sampler.depths or [0]),
        "queue_mean": statistics.fmean(sampler.depths) if sampler.depths else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--publishers", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--workers", type=int, default=launch.DEFAULT_WORKERS)
    args = parser.parse_args()
    (ROOT / "var").mkdir(exist_ok=True)
    source = make_source(ROOT / "var")
    print(machine(), flush=True)
    for count in args.publishers:
        result = run(count, args.seconds, args.workers, source)
        print(
            " ".join(
                f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
