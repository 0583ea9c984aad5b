"""What a publish/unpublish callback costs in the studio against its floor
(`make bench`, after `bench/api_latency.py`).

The floor (`bench/callback_floor_app.py`) is a bare WSGI callable that
sends the studio's own statements for these callbacks (recorded from one
publish and one unpublish through the real app, `record_statements`) and the same Redis
writes, with nothing else: no Flask, no SQLAlchemy, no domain code. Both
run under gunicorn with gunicorn.conf.py's settings and the same workers,
threads and connection cap, against the same database and Redis, and take
turns under the same load as `bench/api_latency.py`'s callbacks (an
`on_publish` + `on_unpublish` pair per iteration from each client). The
difference is what the studio's layers cost per callback; the floor is what
the SRS callbacks' p95 goal would read if those layers cost nothing.

Prints a table (p50/p95/p99, requests/s, CPU per callback by process
group) and writes it to docs/benchmarks.md (section "Callback floor").

Usage: python bench/callback_floor.py [--duration 10] [--rounds 5] [--concurrency 8]
       [--workers 2] [--threads 4] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import api_latency  # noqa: E402 (bench/, next to this file)
import callback_floor_app  # noqa: E402
from machine import machine  # noqa: E402

from devtools.process import executor, free_port, start, stop  # noqa: E402
from tests.launch import connection_cap  # noqa: E402
from tests.stack import Tcp  # noqa: E402

SECTION = "## Callback floor"
FLOOR_APP = "callback_floor_app:app"
GROUPS = {
    "studio": ("wsgi:app",),
    "floor": (FLOOR_APP,),
    "postgres": ("postgres:",),
    "redis": ("redis-server",),
}


def start_floor(env: dict, statements: Path, workers: int, threads: int, cap: int):
    """gunicorn serving the floor, as `api_latency.start_stack` serves the studio."""
    port = free_port()
    bench = str(ROOT / "bench")
    argv = api_latency.gunicorn_argv(FLOOR_APP, port, workers, threads, cap, "--pythonpath", bench)
    log_path = api_latency.VAR / "logs" / f"gunicorn-floor-{port}.log"
    environment = env | {"CALLBACK_FLOOR_STATEMENTS": str(statements)}
    server = executor(Tcp, argv, log_path, env=environment, host="127.0.0.1", port=port)
    start(server, "gunicorn (callback floor)")
    return server, port


def table(phases: list[tuple[str, api_latency.Phase]]) -> str:
    lines = [
        "| callbacks | requests | errors | req/s | p50 ms | p95 ms | p99 ms "
        "| CPU ms: gunicorn | PostgreSQL | Redis | client | total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group, phase in phases:
        costs = [phase.cpu_ms(name) for name in (group, "postgres", "redis", "client")]
        cells = " | ".join(f"{cost:.2f}" for cost in costs)
        lines.append(
            f"| {phase.name} | {len(phase.latencies)} | {len(phase.errors)} | {phase.rate:.0f} "
            f"| {phase.percentile(50):.1f} | {phase.percentile(95):.1f} "
            f"| {phase.percentile(99):.1f} | {cells} | {sum(costs):.2f} |"
        )
    return "\n".join(lines)


def report(phases, args, load: tuple[float, float], counts: dict[str, int]) -> str:
    return f"""{SECTION}

`make bench` (`bench/callback_floor.py`): the SRS callbacks of "API latency"
(an on_publish + on_unpublish pair per iteration, each callback one request)
against the studio (`wsgi:app`) and against their floor
(`bench/callback_floor_app.py`: the same {counts["on_publish"]} statements per
publish and {counts["on_unpublish"]} per unpublish, recorded from the studio,
in the same transactions, and the same Redis writes, in a bare WSGI callable
with psycopg 3 and redis-py: no Flask, no SQLAlchemy, no domain code). Both
under gunicorn with gunicorn.conf.py, {args.workers} workers x {args.threads} threads,
at most {connection_cap(args.threads)} connections each, {args.concurrency} client threads
with keep-alive connections, {args.duration:.0f} s each in {args.rounds} alternating turns.

- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Machine: {machine()}; load average {load[0]:.2f} before, {load[1]:.2f} after

{table(phases)}

CPU per callback, in ms, by process group as in "API latency" (gunicorn is
the server's master and workers). The gap between the two gunicorn columns
is what Flask, SQLAlchemy and the studio's own code (the status machine's
decisions, events, metrics, the log line, the RQ job) cost per callback;
the goal (p95 < 25 ms at 8 clients) asks for about the floor's latency.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per side")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--rounds", type=int, default=5, help="alternating turns per side")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args(argv)

    cap = connection_cap(args.threads)
    env, cleanup, port = api_latency.start_stack(args.workers, args.threads, cap)
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    try:
        app, _, streams = api_latency.seed(env, args.concurrency + 1)
        body = api_latency.publish_body(streams[-1], "floor")
        recorded = callback_floor_app.record_statements(app, api_latency.HOOK_PATH, body)
        statements = api_latency.VAR / f"callback-floor-{port}.json"
        statements.write_text(json.dumps(recorded))
        counts = {
            action: len(recorded.get(action, ())) for action in ("on_publish", "on_unpublish")
        }
        floor, floor_port = start_floor(env, statements, args.workers, args.threads, cap)
        cleanup.insert(0, lambda: stop(floor))
        sides = [("studio", port), ("floor", floor_port)]
        for _, side_port in sides:  # warm up every worker's connections and statements
            warm = api_latency.connect(side_port, args.concurrency)
            iteration = api_latency.hook_iteration(warm, streams)
            api_latency.run_phase(api_latency.Phase("warm-up", 0), args.concurrency, 1.0, iteration)
            api_latency.close(warm)
        api_latency.analyze(app)
        load_before = os.getloadavg()[0]
        phases = [(group, api_latency.Phase(group, args.concurrency)) for group, _ in sides]
        for _ in range(args.rounds):
            for (_, phase), (_, side_port) in zip(phases, sides, strict=True):
                clients = api_latency.connect(side_port, args.concurrency)
                before = api_latency.cpu_now(database, GROUPS)
                iteration = api_latency.hook_iteration(clients, streams)
                api_latency.run_phase(
                    phase, args.concurrency, args.duration / args.rounds, iteration
                )
                phase.add_cpu(before, api_latency.cpu_now(database, GROUPS))
                api_latency.close(clients)
        text = report(phases, args, (load_before, os.getloadavg()[0]), counts)
    finally:
        for stop_one in cleanup:
            stop_one()
    errors = [error for _, phase in phases for error in phase.errors]
    return api_latency.finish(text, errors, not args.no_write, SECTION, after=api_latency.SECTION)


if __name__ == "__main__":
    sys.exit(main())
