"""API latency under concurrent load, against gunicorn (`make bench`).

Starts everything it needs (a throwaway PostgreSQL database and a private
Redis via devtools/services.py, migrations, gunicorn
serving `wsgi:app` on a free port), seeds a user, an API token and
streams, then drives keep-alive load from client threads at three
endpoints in the same run, taking turns (`--rounds`, 5 by default: each
endpoint's `--duration` in five 2 s turns, so all three see the same
stretch of a machine whose speed drifts):

- `GET /healthz`: does no I/O; the floor (HTTP, gunicorn, Flask, middleware);
- `GET /api/v1/streams/{id}`: token lookup, stream query, JSON;
- `POST /hooks/srs`: an `on_publish` + `on_unpublish` pair per iteration
  (unique client ids; each client thread owns a stream, so every publish is
  accepted and every unpublish ends it: the write path of the status machine).

Prints p50/p95/p99, requests/s and the ratio to the no-op per endpoint, and
writes the table to docs/benchmarks.md (section "API latency").

Each endpoint runs at 1 client (the service time, no queueing) and at N
clients (latency under load).

Usage: python bench/api_latency.py [--duration 10] [--rounds 5] [--concurrency 8]
       [--workers 2] [--threads 4] [--worker-connections N] [--no-write]
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import runpy
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import request_costs  # noqa: E402 (bench/, next to this file)
from machine import machine  # noqa: E402
from process_cpu import cpu_by_group  # noqa: E402

from devtools.process import (  # noqa: E402
    accepted_connections,
    executor,
    free_port,
    start,
    stop,
)
from devtools.services import create_database, ensure_postgres, start_redis  # noqa: E402
from tests.launch import connection_cap  # noqa: E402
from tests.stack import Tcp, drop_database  # noqa: E402

VAR = ROOT / "var" / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## API latency"
HOOK_TOKEN = secrets.token_urlsafe(16)
# The server's processes by group (process_cpu); the client is this process.
GROUPS = {"gunicorn": ("gunicorn",), "postgres": ("postgres:",), "redis": ("redis-server",)}


@dataclass
class Phase:
    """One endpoint's measurements (seconds per request)."""

    name: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    # CPU seconds spent meanwhile, per group of GROUPS and "client".
    cpu: dict[str, float] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def add_cpu(self, before: dict[str, float], after: dict[str, float]) -> None:
        for group, seconds in after.items():
            self.cpu[group] = self.cpu.get(group, 0.0) + seconds - before.get(group, 0.0)

    def cpu_ms(self, group: str) -> float:
        """CPU milliseconds per request of one group."""
        return self.cpu.get(group, 0.0) / len(self.latencies) * 1000 if self.latencies else 0.0


# --- the stack ----------------------------------------------------------------


def start_stack(workers: int, threads: int, connections: int) -> tuple[dict, list, int]:
    """Database, Redis, migrations, gunicorn; returns (env, things to stop, port)."""
    VAR.mkdir(parents=True, exist_ok=True)
    postgres = ensure_postgres(VAR, database="postgres")
    name = f"studio_bench_{secrets.token_hex(4)}"
    create_database(postgres.server_url, name)
    redis = start_redis(VAR)
    cleanup = [lambda: drop_database(postgres.server_url, name), redis.stop, postgres.stop]
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": postgres.url.rsplit("/", 1)[0] + "/" + name,
        "REDIS_URL": redis.url,
        "STUDIO_SECRET_KEY": secrets.token_urlsafe(32),
        "STUDIO_HOOK_TOKEN": HOOK_TOKEN,
        "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "STUDIO_LOG_LEVEL": "INFO",
        # The API rate limit stays on (its cost is part of the measurement) but
        # high enough that this load, from one token, is never refused.
        "STUDIO_RATELIMIT_API": "100000000 per minute",
        # No media server here: a drop (never triggered by this load) fails fast.
        "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
        "STUDIO_SRS_API_URL": "http://127.0.0.1:9",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "flask"), "--app", "studio", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    argv = gunicorn_argv("wsgi:app", port, workers, threads, connections)
    log_path = VAR / "logs" / f"gunicorn-{port}.log"
    server = executor(Tcp, argv, log_path, env=env, host="127.0.0.1", port=port, timeout=30)
    cleanup.insert(0, lambda: stop(server))
    start(server, "gunicorn")
    return env, cleanup, port


def gunicorn_argv(
    app: str, port: int, workers: int, threads: int, connections: int, *flags: str
) -> list:
    """gunicorn serving `app` as the benchmarks pin it, with `flags` added.
    gunicorn also reads ./gunicorn.conf.py (the production settings) when it
    exists; the flags override only what a benchmark must pin."""
    return [
        str(Path(sys.executable).parent / "gunicorn"),
        *flags,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--worker-connections",
        str(connections),
        "--keep-alive",
        "75",
        app,
    ]


def seed(env: dict, streams: int) -> tuple[object, str, list[tuple[str, str]]]:
    """`streams` creators with one stream each (so the per-creator live limit
    is checked but never reached) and an API token for the last one; returns
    (the app, in this process, token, [(public id, key)])."""
    os.environ.update(env)
    from studio import create_app
    from studio.auth import service as accounts
    from studio.extensions import db
    from studio.streams import service

    app = create_app()
    with app.app_context():
        rows = []
        for i in range(streams):
            user = accounts.create_user(db.session, f"bench{i}@example.com", "bench-password-1")
            # No reconnect window: every unpublish ends its broadcast (the write
            # path this benchmark measures), as in the other benchmarks.
            rows.append(service.create_stream(db.session, user, f"Bench {i}", reconnect_window=0))
        _, token = accounts.create_api_token(db.session, user, "bench")
        db.session.commit()
        return app, token, [(s.public_id, s.stream_key) for s in rows]


# --- load ---------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection (http.client: far less client CPU per
    request than requests, which matters when client and server share 2 cores)."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers=headers)
        reply = self.connection.getresponse()
        return reply.status, reply.read()


def run_phase(phase: Phase, concurrency: int, duration: float, make_iteration) -> None:
    """Run `make_iteration(thread index)` callables from `concurrency` threads
    for `duration` seconds; adds to what `phase` holds."""
    deadline = time.monotonic() + duration
    lock = threading.Lock()

    def worker(index: int) -> None:
        iteration = make_iteration(index)
        local, errors = [], []
        while time.monotonic() < deadline:
            for latency, error in iteration():
                local.append(latency)
                if error:
                    errors.append(error)
        with lock:
            phase.latencies.extend(local)
            phase.errors.extend(errors)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.elapsed += time.monotonic() - started


def cpu_now(database: str, groups: dict = GROUPS) -> dict[str, float]:
    """CPU seconds so far: the server's processes by group, and this process
    (the client threads)."""
    times = os.times()
    return cpu_by_group(database, groups) | {"client": times.user + times.system}


def timed(client: Client, method: str, path: str, body=None, headers=None, check=None):
    headers = headers or {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers = headers | {"Content-Type": "application/json"}
    started = time.perf_counter()
    status, reply = client.call(method, path, data, headers)
    latency = time.perf_counter() - started
    error = None if check is None else check(status, reply)
    return latency, error


def expect(status_wanted: int, code_zero: bool = False):
    def check(status: int, reply: bytes) -> str | None:
        if status != status_wanted:
            return f"HTTP {status}: {reply[:120]!r}"
        if code_zero and json.loads(reply).get("code") != 0:
            return f"refused: {reply[:120]!r}"
        return None

    return check


def connect(port: int, count: int) -> list[Client]:
    """`count` keep-alive connections, open: each stays with the gunicorn
    worker that accepted it (`worker_split`)."""
    clients = [Client(port) for _ in range(count)]
    for client in clients:
        client.connection.connect()
    return clients


def close(clients: list[Client]) -> None:
    for client in clients:
        client.connection.close()


def worker_split(port: int, count: int, timeout: float = 2.0) -> list[int]:
    """How many established connections to `port` each accepting process
    holds (a gunicorn worker; the master only listens), most first, once
    the workers have accepted all `count` (or after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        held = accepted_connections(port, exclude=os.getpid())
        if sum(held.values()) >= count or time.monotonic() > deadline:
            return sorted(held.values(), reverse=True)
        time.sleep(0.01)


def noop_iteration(clients: list[Client]):
    def make(index: int):
        client = clients[index]
        return lambda: [timed(client, "GET", "/healthz", check=expect(200))]

    return make


def api_iteration(clients: list[Client], token: str, stream_id: str):
    headers = {"Authorization": f"Bearer {token}"}

    def make(index: int):
        client = clients[index]
        path = f"/api/v1/streams/{stream_id}"
        return lambda: [timed(client, "GET", path, headers=headers, check=expect(200))]

    return make


HOOK_PATH = f"/hooks/srs?token={HOOK_TOKEN}"


@functools.cache
def _on_publish_fixture() -> dict:
    return json.loads((ROOT / "tests/fixtures/srs5/on_publish.json").read_text())


def publish_body(stream: tuple[str, str], client_id: str) -> dict:
    """SRS 5's on_publish for `stream` (public id, key) from `client_id`
    (the fixture read once: the client shares the 2 cores it measures)."""
    public_id, key = stream
    return _on_publish_fixture() | {
        "stream": public_id,
        "param": f"?secret={key}",
        "stream_url": f"/live/{public_id}",
        "client_id": client_id,
    }


def hook_iteration(clients: list[Client], streams: list[tuple[str, str]]):
    path = HOOK_PATH

    def make(index: int):
        client = clients[index]
        counter = iter(range(10**9))
        run = secrets.token_hex(3)  # client ids never repeat across phases

        def pair():
            body = publish_body(streams[index], f"b{run}-{index}-{next(counter)}")
            publish = timed(client, "POST", path, body, check=expect(200, code_zero=True))
            body = body | {"action": "on_unpublish"}
            unpublish = timed(client, "POST", path, body, check=expect(200, code_zero=True))
            return [publish, unpublish]

        return pair

    return make


def cost_calls(token: str, streams: list[tuple[str, str]]) -> list:
    """The three endpoints as in-process calls for `request_costs.measure`,
    and SRS's on_hls (one per segment: counted, not load-tested)."""
    api_path = f"/api/v1/streams/{streams[-1][0]}"
    auth = {"Authorization": f"Bearer {token}"}
    run = secrets.token_hex(3)

    def noop(client, i: int) -> int:
        assert client.get("/healthz").status_code == 200
        return 1

    def api(client, i: int) -> int:
        assert client.get(api_path, headers=auth).status_code == 200
        return 1

    def hooks(client, i: int) -> int:
        body = publish_body(streams[0], f"c{run}-{i}")
        for action in ("on_publish", "on_unpublish"):
            reply = client.post(HOOK_PATH, json=body | {"action": action})
            assert reply.status_code == 200 and reply.json["code"] == 0, reply.text
        return 2

    on_hls = json.loads((ROOT / "tests/fixtures/srs5/on_hls.json").read_text())
    public_id = streams[1][0]

    def segment(client, i: int) -> int:
        name = f"{public_id}-{i}.ts"
        body = on_hls | {"stream": public_id, "seq_no": i, "url": f"live/{name}"}
        reply = client.post(HOOK_PATH, json=body | {"file": f"/data/hls/live/{name}"})
        assert reply.status_code == 200 and reply.json["code"] == 0, reply.text
        return 1

    return [
        ("GET /healthz (no-op)", noop),
        ("GET /api/v1/streams/{id}", api),
        ("POST /hooks/srs (publish+unpublish)", hooks),
        ("POST /hooks/srs (on_hls)", segment),
    ]


# --- report -------------------------------------------------------------------


def table(phases: list[Phase]) -> str:
    noops = {phase.clients: phase for phase in phases if "no-op" in phase.name}
    lines = [
        "| endpoint | clients | requests | errors | req/s | p50 ms | p95 ms | p99 ms "
        "| p95 / no-op p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in phases:
        ratio = phase.percentile(95) / noops[phase.clients].percentile(95)
        lines.append(
            f"| {phase.name} | {phase.clients} | {len(phase.latencies)} | {len(phase.errors)} | "
            f"{phase.rate:.0f} | {phase.percentile(50):.1f} | {phase.percentile(95):.1f} | "
            f"{phase.percentile(99):.1f} | {ratio:.1f}x |"
        )
    return "\n".join(lines)


def cpu_table(phases: list[Phase]) -> str:
    """CPU per request by process group, at the highest client count."""
    most = max(phase.clients for phase in phases)
    groups = [*GROUPS, "client"]
    lines = [
        "| endpoint | clients | gunicorn | PostgreSQL | Redis | client | total |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in phases:
        if phase.clients != most:
            continue
        costs = [phase.cpu_ms(group) for group in groups]
        cells = " | ".join(f"{cost:.2f}" for cost in costs)
        lines.append(f"| {phase.name} | {phase.clients} | {cells} | {sum(costs):.2f} |")
    return "\n".join(lines)


def write_section(text: str, section: str = SECTION, after: str | None = None) -> None:
    """Replace `section` ("API latency" by default) of docs/benchmarks.md
    (others are kept); a missing one goes after the section `after`, else
    at the end."""
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    text = text.strip("\n") + "\n\n"
    start = current.find(section)
    if start == -1:
        found = current.find(after) if after else -1
        follows = current.find("\n## ", found + 1) if found != -1 else -1
        if follows == -1:
            updated = current.rstrip("\n") + "\n\n" + text
        else:
            updated = current[: follows + 1] + text + current[follows + 1 :]
    else:
        end = current.find("\n## ", start + len(section))
        updated = current[:start] + text + (current[end + 1 :] if end != -1 else "")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(updated.rstrip("\n") + "\n")


def finish(text: str, errors: list[str], write: bool, section: str = SECTION, after=None) -> int:
    """Print the report and the first errors; write it to the docs only when
    no request failed (and `write`). The exit status."""
    print(text)
    for error in errors[:10]:
        print("error:", error, file=sys.stderr)
    if errors:
        print(f"{len(errors)} requests failed; docs not updated.", file=sys.stderr)
        return 1
    if write:
        write_section(text, section, after)
        print(f"Written to {DOC.relative_to(ROOT)}.", file=sys.stderr)
    return 0


def analyze(app) -> None:
    """Give the planner statistics of the tables as the warm-up left them. In
    a fresh database they say "empty" until autovacuum's first pass (up to a
    minute), and the callbacks' reads of a stream's broadcasts then walk all
    of its past ones instead of taking the open one and the publisher's from
    their indexes. A deployment's tables are analyzed as they grow."""
    from sqlalchemy import text

    from studio.extensions import db

    with app.app_context(), db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def server_facts(app) -> str:
    """The PostgreSQL server as the benchmark found it: version, durability
    settings, and whether it is the machine's own (shared) server."""
    from sqlalchemy import text

    from studio.extensions import db

    with app.app_context():
        settings = dict(
            db.session.execute(
                text(
                    "SELECT name, setting FROM pg_settings WHERE name IN"
                    " ('server_version', 'fsync', 'synchronous_commit', 'port')"
                )
            ).all()
        )
        db.session.remove()
    where = "the machine's server, shared" if settings["port"] == "5432" else "a private cluster"
    return (
        f"PostgreSQL {settings['server_version'].split()[0]} ({where}; fsync "
        f"{settings['fsync']}, synchronous_commit {settings['synchronous_commit']})"
    )


def report(
    phases: list[Phase],
    costs: list[request_costs.Cost],
    args: argparse.Namespace,
    load: tuple[float, float],
    server: str,
    splits: list[list[int]],
) -> str:
    from studio import database

    switch = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["switch_interval"]
    connections = args.worker_connections
    return f"""{SECTION}

`make bench` (`bench/api_latency.py`): gunicorn `wsgi:app` with gunicorn.conf.py
(threads switch every {switch * 1000:g} ms), gthread, {args.workers} workers x {args.threads}
threads, at most {connections} connections each, against {server} and Redis on the
same machine; 1 and {args.concurrency} client threads with keep-alive connections
(http.client), {args.duration:.0f} s per endpoint and client count, in one run: the
endpoints take turns, {args.rounds} turns of {args.duration / args.rounds:g} s each, so the
no-op and the others see the same stretch of the machine.
Latency is measured by the client (so it includes the client's own time).

- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Machine: {machine()}; load average {load[0]:.2f} before, {load[1]:.2f} after
  (the machine is shared with other work: treat the numbers as an upper bound)
- `GET /healthz` is the no-op (no I/O): the ratio is our overhead over bare
  gunicorn + Flask. `POST /hooks/srs` counts each callback of an
  on_publish + on_unpublish pair as one request.

{table(phases)}

Floor: p95 < 100 ms; aim: p95 < 20 ms.

The {args.concurrency} clients' connections per gunicorn worker as each turn began:
{", ".join("+".join(map(str, split)) for split in splits)}. A keep-alive connection
stays with the worker that accepted it, and a worker runs one thread at a
time (the GIL), so an uneven split puts more of the load on one worker
(one core): the p95 follows the busier one. A worker that holds
{connections} connections takes no more (gunicorn.conf.py), and past
{connections - args.threads} idle ones it closes a connection after its response, so the
clients reconnect and spread over the workers. The endpoints of a turn share
its connections, so the ratios compare like with like.

CPU per request, in ms, over the same runs (`bench/process_cpu.py`: the
processes' CPU times in /proc before and after each turn; gunicorn's master
and workers, this database's PostgreSQL backends, Redis, and the
benchmark's own process, whose threads are the clients). With the client
count above the cores, the latency follows the total: the clients wait
for the machine's CPU.

{cpu_table(phases)}

What one request costs, counted in-process after the load (`bench/request_costs.py`:
listeners on the app's SQLAlchemy engine and Redis connections, through the
whole WSGI app; averages over 200 requests; a hook request is one callback;
app CPU ms is the process's CPU time per request: the app and the test client,
not PostgreSQL, Redis or gunicorn):

{request_costs.table(costs)}

Where the time goes (profiled in-process, counted above): `GET
/api/v1/streams/{{id}}` is one Redis round trip (a pipeline: the rate-limit
Lua script, the address's failed authentications then the token's window,
which also gives the X-RateLimit headers, and the stream's viewer count, a
ZCOUNT), a pooled connection (pinged only after
{database.IDLE_BEFORE_PING:.0f} s idle) put in autocommit (no BEGIN, no
ROLLBACK, no SET), one query (the token joined to its user, that user's
stream and the stream's last refused publish) and the JSON. Every statement
here is prepared on its connection once it has run five times there
(psycopg 3): PostgreSQL plans it once, not on every request. `on_publish`
locks the stream and its owner (one statement, which also reads whether
the owner has an enabled webhook endpoint and whether the media node it
came from is draining: a draining node refuses), reads the publisher's and the open broadcasts with
the owner's live count (the live limit; one statement, after the lock),
inserts the broadcast and updates the stream (one statement: the update in
a CTE, no ORM flush: `studio/core/writes.py`) and commits; `on_unpublish`
locks the stream with the publisher's open broadcast (one statement),
updates both (one statement) and commits. What follows a callback's commit
(the status message, the replay job, the webhook job when the owner has an
enabled endpoint: none here) goes to Redis in one MULTI/EXEC.
`on_hls` (SRS, once per segment: counted, not load-tested) keeps what SRS
said of the segment and asks for a sync (the trigger script), in Redis only.
A commit waits for its WAL to reach the disk when fsync and
synchronous_commit are on (see above), shared with whatever else the
server is writing.
With 1 client the numbers are service time; with more, the client,
gunicorn, PostgreSQL and Redis share 2 cores (and the machine's other work),
so most of the difference is waiting for a CPU, and every round trip is a
wait for another process to be scheduled.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="each endpoint's time in this many turns, alternating with the others",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument(
        "--worker-connections",
        type=int,
        help="connections a worker takes (default: threads + gunicorn.conf.py's IDLE_KEEPALIVE)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    parser.add_argument(
        "--costs-only", action="store_true", help="only count round trips per request (no load)"
    )
    args = parser.parse_args(argv)
    # The cap follows the threads as gunicorn.conf.py's rule does, unless given.
    args.worker_connections = args.worker_connections or connection_cap(args.threads)

    env, cleanup, port = start_stack(args.workers, args.threads, args.worker_connections)
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    try:
        app, token, streams = seed(env, args.concurrency + 1)
        if args.costs_only:
            print(request_costs.table(request_costs.measure(app, cost_calls(token, streams))))
            return 0
        endpoints = [
            ("GET /healthz (no-op)", noop_iteration),
            ("GET /api/v1/streams/{id}", lambda c: api_iteration(c, token, streams[-1][0])),
            ("POST /hooks/srs (publish+unpublish)", lambda c: hook_iteration(c, streams)),
        ]
        # Warm up every worker's imports, pools and caches before measuring.
        for _, iteration in endpoints:
            warm = connect(port, args.concurrency)
            run_phase(Phase("warm-up", args.concurrency), args.concurrency, 1.0, iteration(warm))
            close(warm)
        analyze(app)
        load_before = os.getloadavg()[0]
        plan, splits = [], []
        for count in (1, args.concurrency):
            phases = [Phase(name, count) for name, _ in endpoints]
            # Round robin: each endpoint's time is spread over the same
            # stretch of the run as the no-op's, so a slow phase of the
            # machine lands on all of them, not on whichever ran then. The
            # endpoints of a turn share its connections, so they see the
            # same split of the clients between the workers.
            for _ in range(args.rounds):
                clients = connect(port, count)
                if count == args.concurrency:
                    splits.append(worker_split(port, count))
                for phase, (_, iteration) in zip(phases, endpoints, strict=True):
                    before = cpu_now(database)
                    run_phase(phase, count, args.duration / args.rounds, iteration(clients))
                    phase.add_cpu(before, cpu_now(database))
                close(clients)
            for phase in phases:
                print(f"{phase.name} x{count}: {len(phase.latencies)} requests", file=sys.stderr)
            plan.extend(phases)
        load = (load_before, os.getloadavg()[0])
        # After the load: counting slows the calls it counts.
        costs = request_costs.measure(app, cost_calls(token, streams))
        text = report(plan, costs, args, load, server_facts(app), splits)
    finally:
        for stop in cleanup:
            stop()
    errors = [error for phase in plan for error in phase.errors]
    return finish(text, errors, not args.no_write)


if __name__ == "__main__":
    sys.exit(main())
