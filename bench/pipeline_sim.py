"""The pipeline alone, fed by the simulated engine (bench/sim_engine.py).

    .venv/bin/python bench/pipeline_sim.py --streams 100 200 300 400 --fragments 2 1 \\
        [--until-broken] [--dialect srs|nginx-rtmp] [--seconds 45] [--workers 4] [--nodes 2]
        [--bucket filesystem|memory] [--storage tmpfs|disk]

For each (fragment, N): the studio as `make dev` runs it (throwaway database,
private Redis, fake-gcs-server, nginx's CDN edge, gunicorn, the RQ workers,
the watcher, STUDIO_HLS_FRAGMENT = the fragment), N simulated streams for
`--seconds`, then unpublish and drain. Reports upload lag (segment complete
on disk -> its row committed after the upload), edge lag for a sample of
streams, first segment at the bucket and at the edge, lost segments, replay
completeness, queue depth, and the CPU seconds per segment of each process
group (the engine's own included, to show it stays small).

`--until-broken` sweeps each fragment's N in the order given and stops after
the first N that misses the goal (upload lag p95 < 1 s, nothing lost, every
replay written): the breaking point. Each run prints its key=value line as
it ends; at the end the capacity and per-segment CPU tables are printed as
the Markdown rows of docs/benchmarks.md ("Media pipeline, simulated engine").

`--nodes N`: N media nodes (STUDIO_MEDIA_NODES), each with its own HLS
directory, simulated engine (callbacks naming the node), watcher and
`--workers` upload workers on its own queues; streams are spread over the
nodes in turn, and upload lag is also reported per node.

`--bucket`: fake-gcs-server's backend, "filesystem" by default: its cost per
upload stays flat, where the "memory" backend's grows with the objects it
holds (`bench/bucket_emulator.py`) and, at a few hundred streams, charges the
pipeline for several ms of emulator CPU per segment that Cloud Storage does
not cost our machines.

`--storage`: where a run's files live (the engine's HLS directory, the
bucket's objects, the logs): "tmpfs" (/dev/shm, the default) or "disk"
(var/). On a disk the writes are the engine's and the emulator's costs, not
the pipeline's, and they are large: writing 150 segments a second took the
simulated engine about 0.35 cores of kernel time, and each upload took the
emulator two fsyncs (about 5 ms of kernel CPU) on the machine of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import threading
import time
from collections import ChainMap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import machine  # noqa: E402
from pipeline import EdgeProbe, Sampler, Studio, pct  # noqa: E402
from process_cpu import cpu_by_group  # noqa: E402
from sim_engine import SimulatedEngine, make_source, segment_number  # noqa: E402

from devtools import runner  # noqa: E402
from tests import launch  # noqa: E402

SAMPLE = 5
# A RAM-backed filesystem for a run's files (`--storage tmpfs`).
TMPFS = "/dev/shm"  # noqa: S108 - the parent of a fresh 0700 directory with a random name
# Process groups by command line, among the processes this benchmark started
# (its descendants) and the PostgreSQL backends of its own database.
GROUPS = {
    "workers": ("rq.cli", "rq worker", "workers.rq_worker"),
    "web+hooks": ("gunicorn",),
    "watcher": ("workers.watcher",),
    "bucket": ("fake-gcs-server",),
    "redis": ("redis-server",),
    "postgres": ("postgres:",),
}


def jobs_done(redis_url: str) -> int:
    """Jobs the RQ workers have finished (successfully or not) so far."""
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(redis_url)
    workers = Worker.all(connection=connection)
    return sum(w.successful_job_count + w.failed_job_count for w in workers)


class Pool:
    """The simulated engines (one per media node) seen as one: what
    EdgeProbe needs of a disk watch (segment name -> moment complete) and
    what the report reads."""

    def __init__(self, engines: dict[str, SimulatedEngine]):
        self.engines = engines  # node id -> its engine
        self.node_of: dict[str, str] = {}  # public id -> node id

    # Views over the engines' own dicts, read while their threads add to
    # them: the probe looks names up (cheap at any N); the report iterates
    # only once the engines are done.
    @property
    def closed(self) -> ChainMap:
        return ChainMap(*(e.closed for e in self.engines.values()))

    @property
    def started(self) -> ChainMap:
        return ChainMap(*(e.started for e in self.engines.values()))

    @property
    def by_stream(self) -> ChainMap:
        return ChainMap(*(e.by_stream for e in self.engines.values()))

    def run(self, streams: list[tuple[str, str]], seconds: float) -> None:
        """Spread the streams over the engines in turn; run them all."""
        drivers = []
        for index, (node_id, engine) in enumerate(self.engines.items()):
            own = streams[index :: len(self.engines)]
            self.node_of.update({public_id: node_id for public_id, _ in own})
            drivers.append(threading.Thread(target=engine.run, args=(own, seconds), daemon=True))
        for driver in drivers:
            driver.start()
        for driver in drivers:
            driver.join()


def engines_of(studio: Studio, dialect: str, source) -> dict[str, SimulatedEngine]:
    """One simulated engine per media node (or the single one): its HLS
    directory, its callbacks naming it."""
    if not studio.nodes:
        return {"default": SimulatedEngine(studio.nginx.hls_dir, dialect, studio.hook_url, source)}
    return {
        node.id: SimulatedEngine(
            node.nginx.hls_dir, dialect, runner.node_hook_url(studio.hook_url, node.id), source
        )
        for node in studio.nodes
    }


def run(
    count: int,
    fragment: float,
    seconds: float,
    workers: int,
    dialect: str,
    nodes: int = 0,
    bucket: str = "filesystem",
    storage: str = "tmpfs",
) -> dict:
    base = Path(TMPFS) if storage == "tmpfs" else ROOT / "var"
    var = base / f"bench-sim-{count}-{fragment:g}-{secrets.token_hex(2)}"
    var.mkdir(mode=0o700, parents=True)
    source = make_source(ROOT / "var", fragment)
    load_before = os.getloadavg()[0]
    studio = Studio(var, workers, engine=dialect, fragment=fragment, nodes=nodes, bucket=bucket)
    try:
        streams = studio.seed(count)
        engine = Pool(engines_of(studio, dialect, source))
        sampler = Sampler(studio)
        sampler.start()
        before = cpu_by_group(studio.dbname, GROUPS)
        began = time.time()
        driver = threading.Thread(target=engine.run, args=(streams, seconds), daemon=True)
        driver.start()
        sample = [public_id for public_id, _ in streams[:SAMPLE]]
        while not all(public_id in engine.started for public_id in sample):
            time.sleep(0.05)
        started = engine.started
        probe = EdgeProbe(studio, engine, {public_id: started[public_id] for public_id in sample})
        probe.start()
        driver.join()
        deadline = time.time() + 180
        while time.time() < deadline:
            state = studio.broadcasts()
            if len(state) == count and all(b["replay_ready"] for b in state.values()):
                break
            time.sleep(1)
        elapsed = time.time() - began
        after = cpu_by_group(studio.dbname, GROUPS)
        jobs = jobs_done(studio.env["REDIS_URL"])
        probe.running = sampler.running = False
        state = studio.broadcasts()
        lags, lost, first = [], 0, []
        node_lags: dict[str, list[float]] = {node_id: [] for node_id in engine.engines}
        for name, closed in engine.closed.items():
            public_id, number = segment_number(name)
            uploaded = state.get(public_id, {}).get("segments", {}).get(number)
            if uploaded is None:
                lost += 1
            else:
                lags.append(max(0.0, uploaded - closed))
                node_lags[engine.node_of[public_id]].append(lags[-1])
        for public_id, broadcast in state.items():
            numbers = sorted(broadcast["segments"])
            if numbers:
                first.append(broadcast["segments"][numbers[0]] - engine.started[public_id])
        segments = max(1, len(engine.closed))
        engines = engine.engines.values()
        result = {
            "dialect": dialect,
            "bucket": bucket,
            "storage": storage,
            "nodes": nodes,
            "streams": count,
            "fragment": fragment,
            "seconds": seconds,
            "workers": workers,
            "segments": len(engine.closed),
            "lost": lost,
            "replays": sum(b["replay_ready"] for b in state.values()),
            "callback_errors": sum(len(e.callback_errors) for e in engines),
            "lag_p50": pct(lags, 0.5),
            "lag_p95": pct(lags, 0.95),
            "lag_max": max(lags or [0]),
            "edge_lag_p95": pct(probe.lags, 0.95),
            "first_bucket_p50": pct(first, 0.5),
            "first_bucket_max": max(first or [0]),
            "first_edge_max": max(probe.first_playable.values() or [0]),
            "queue_max": max(sampler.depths or [0]),
            "jobs_per_segment": jobs / segments,
            "engine_cores": sum(e.cpu_seconds for e in engines) / elapsed,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        }
        if nodes:
            for node_id, values in node_lags.items():
                result[f"segments_{node_id}"] = len(values)
                result[f"lag_p95_{node_id}"] = pct(values, 0.95)
        for group in GROUPS:
            result[f"cpu_ms_per_segment_{group}"] = (after[group] - before[group]) * 1000 / segments
        return result
    finally:
        studio.stop()
        shutil.rmtree(var, ignore_errors=True)


GOAL_LAG_P95 = 1.0  # seconds


def meets_goal(result: dict) -> bool:
    """Upload lag p95 under a second, nothing lost, every replay written."""
    return (
        result["lag_p95"] < GOAL_LAG_P95
        and result["lost"] == 0
        and result["replays"] == result["streams"]
        and result["callback_errors"] == 0
    )


def capacity_rows(results: list[dict]) -> list[str]:
    """The capacity table of docs/benchmarks.md, one Markdown row per run."""
    rows = [
        "| Fragment | Streams | Segments | Lost | Replays | Upload lag p50 / p95 / max"
        " | Edge lag p95 | First segment in bucket (p50 / max) | Queue max | RQ jobs per segment"
        " | Engine (cores) | Goal | Load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['fragment']:g} s | {r['streams']} | {r['segments']:,} | {r['lost']}"
            f" | {r['replays']}/{r['streams']}"
            f" | {r['lag_p50']:.2f} / {r['lag_p95']:.2f} / {r['lag_max']:.2f} s"
            f" | {r['edge_lag_p95']:.2f} s"
            f" | {r['first_bucket_p50']:.2f} / {r['first_bucket_max']:.2f} s"
            f" | {r['queue_max']} | {r['jobs_per_segment']:.2f} | {r['engine_cores']:.2f}"
            f" | {'met' if meets_goal(r) else 'missed'}"
            f" | {r['load_before']:.1f} -> {r['load_after']:.1f} |"
        )
    return rows


def cpu_rows(results: list[dict]) -> list[str]:
    """CPU milliseconds per segment of each process group, one row per run."""
    names = {"workers": "RQ workers", "web+hooks": "web + callbacks", "bucket": "bucket emulator"}
    header = " | ".join(names.get(group, group) for group in GROUPS)
    rows = [f"| Fragment | Streams | {header} | total |", "|---|---|" + "---|" * (len(GROUPS) + 1)]
    for r in results:
        costs = [r[f"cpu_ms_per_segment_{group}"] for group in GROUPS]
        cells = " | ".join(f"{cost:.1f}" for cost in costs)
        rows.append(f"| {r['fragment']:g} s | {r['streams']} | {cells} | {sum(costs):.1f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--fragments", type=float, nargs="+", default=[2.0, 1.0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=launch.DEFAULT_WORKERS)
    parser.add_argument("--dialect", choices=["srs", "nginx-rtmp"], default="srs")
    parser.add_argument("--nodes", type=int, default=0, help="media nodes (0: one machine)")
    parser.add_argument(
        "--bucket",
        choices=["filesystem", "memory"],
        default="filesystem",
        help="the bucket emulator's backend (memory's cost per upload grows with what it holds)",
    )
    parser.add_argument(
        "--storage",
        choices=["tmpfs", "disk"],
        default="tmpfs",
        help="where a run's files live: the engine's HLS directory, the bucket's objects",
    )
    parser.add_argument(
        "--until-broken",
        action="store_true",
        help="per fragment, stop after the first N that misses the goal",
    )
    args = parser.parse_args()
    if any(n <= 0 for n in args.streams) or any(f <= 0 for f in args.fragments):
        parser.error("--streams and --fragments must be positive")
    if not 0 <= args.nodes <= 8:
        parser.error("--nodes must be between 0 and 8")
    (ROOT / "var").mkdir(exist_ok=True)
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = []
    for fragment in args.fragments:
        for count in args.streams:
            result = run(
                count,
                fragment,
                args.seconds,
                args.workers,
                args.dialect,
                args.nodes,
                args.bucket,
                args.storage,
            )
            results.append(result)
            print(
                " ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in result.items()
                ),
                flush=True,
            )
            if args.until_broken and not meets_goal(result):
                break
    print(
        f"\nMeasured {began}, {args.seconds:g} s of streaming, {args.workers} workers,"
        f" {args.dialect} callbacks, bucket emulator on {args.bucket},"
        f" files on {args.storage},"
        f" on {machine()}:\n"
    )
    print("\n".join(capacity_rows(results)))
    print("\nCPU per segment (ms):\n")
    print("\n".join(cpu_rows(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
