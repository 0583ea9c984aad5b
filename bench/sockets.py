"""Many open watch-page sockets against the real stack (`make bench-sockets`).

Starts what production runs, on this machine: a throwaway PostgreSQL
database and a private Redis (devtools/services.py),
migrations, the web tier
(gunicorn gthread with gunicorn.conf.py's defaults: 2 workers x 16 threads),
the socket tier (gunicorn gevent, gunicorn_sockets.conf.py), the callback
tier (gunicorn_hooks.conf.py's defaults: 2 workers x 8 threads) and nginx's
front site in front of the first two (nginx/sites/front.conf.template, the
same routing and per-address limit as deploy/nginx/studio.conf). Then:

1. measures callbacks (`POST /hooks/srs`: on_publish + on_unpublish pairs)
   on the callback tier, where the engines' hook URL points
   (devtools.runner.hook_url), then pages (`GET /watch/<id>`) through nginx,
   with no socket open;
2. opens N `/ws/streams/<id>` sockets through nginx (asyncio `websockets`
   client), spread over the loopback addresses 127.0.0.2, .3, ... so that no
   address exceeds nginx's per-address limit (which stays as deployed), each
   waiting for its first status event;
3. measures the memory the socket tier and nginx gained (PSS, so pages shared
   between workers are not counted twice), per socket;
4. measures callbacks and pages again while the sockets are held (the
   clients holding them run in a process of their own), then publishes one
   status change and times its fan-out to every socket.

Writes the results to docs/benchmarks.md (section "Websockets").

Usage: python bench/sockets.py [--sockets 2000] [--duration 10] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from bench.api_latency import Phase, machine, run_phase, timed  # noqa: E402
from devtools import runner  # noqa: E402
from devtools.nginx import FrontSite, start_nginx  # noqa: E402
from devtools.process import free_port  # noqa: E402
from devtools.services import create_database, ensure_postgres, start_redis  # noqa: E402
from tests import launch, stack  # noqa: E402

VAR = ROOT / "var" / "bench-sockets"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Websockets"
HOOK_TOKEN = secrets.token_urlsafe(16)
PER_ADDRESS = FrontSite.ws_per_address
WATCHED_STREAMS = 10


# --- the stack ----------------------------------------------------------------


class Studio:
    """Database, Redis, the three tiers and nginx's front site; `.stop()` ends them."""

    def __init__(self, socket_workers: int, extra_env: dict[str, str] | None = None):
        VAR.mkdir(parents=True, exist_ok=True)
        self.cleanup: list = []
        postgres = ensure_postgres(VAR, database="postgres")
        name = f"studio_bench_{secrets.token_hex(4)}"
        create_database(postgres.server_url, name)
        self.cleanup.append(lambda: stack.drop_database(postgres.server_url, name))
        redis = start_redis(VAR)
        self.cleanup.append(redis.stop)
        web_port, sockets_port = free_port(), free_port()
        self.hooks_port = free_port()
        front = FrontSite(
            port=free_port(),
            web_url=f"http://127.0.0.1:{web_port}",
            sockets_url=f"http://127.0.0.1:{sockets_port}",
        )
        self.port = front.port
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": postgres.url.rsplit("/", 1)[0] + "/" + name,
            "REDIS_URL": redis.url,
            "STUDIO_SECRET_KEY": secrets.token_urlsafe(32),
            "STUDIO_HOOK_TOKEN": HOOK_TOKEN,
            "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{front.port}",
            "STUDIO_LOG_LEVEL": "WARNING",
            "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
            "STUDIO_SRS_API_URL": "http://127.0.0.1:9",
            # Thousands of sockets from a few loopback addresses within seconds.
            "STUDIO_CHAT_JOIN_RATE_ADDRESS": "100000 per minute",
            **(extra_env or {}),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        launch.migrate(self.env)
        self.nginx = start_nginx(
            VAR,
            hook_url=runner.hook_url(self.hooks_port, "nginx-rtmp", HOOK_TOKEN),
            gcs_url="http://127.0.0.1:9",
            hls_dir=VAR / "hls",
            front=front,
        )
        self.cleanup.insert(0, self.nginx.stop)
        self.web = stack.start_gunicorn(
            self.env, VAR, web_port, config=ROOT / "gunicorn.conf.py", name="bench-web"
        )
        self.cleanup.insert(0, self.web.stop)
        self.sockets = stack.start_gunicorn(
            self.env,
            VAR,
            sockets_port,
            workers=socket_workers,
            name="bench-sockets",
            tier="sockets",
        )
        self.cleanup.insert(0, self.sockets.stop)
        self.hooks = stack.start_gunicorn(
            self.env, VAR, self.hooks_port, workers=2, threads=8, name="bench-hooks", tier="hooks"
        )
        self.cleanup.insert(0, self.hooks.stop)

    def stop(self) -> None:
        for step in self.cleanup:
            try:
                step()
            except Exception as exc:  # keep stopping the rest
                print(f"cleanup: {exc}", file=sys.stderr)


def seed(env: dict, count: int) -> list[tuple[str, str]]:
    """`count` creators with a stream each; returns [(public id, key)]."""
    os.environ.update(env)
    from studio import create_app
    from studio.auth import service as accounts
    from studio.extensions import db
    from studio.streams import service

    app = create_app()
    with app.app_context():
        rows = []
        for i in range(count):
            user = accounts.create_user(db.session, f"ws{i}@example.com", "bench-password-1")
            rows.append(service.create_stream(db.session, user, f"Bench {i}"))
        db.session.commit()
        streams = [(s.public_id, s.stream_key) for s in rows]
        db.engine.dispose()
        return streams


# --- memory -----------------------------------------------------------------------


def process_tree(root_pid: int) -> list[int]:
    """A process and its descendants."""
    found, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        found.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def pss_kib(root_pid: int) -> int:
    """Proportional set size of a process and its descendants, in KiB."""
    total = 0
    for pid in process_tree(root_pid):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU time a process and its descendants have used."""
    ticks = 0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


# --- sockets ------------------------------------------------------------------------


class Viewers:
    """N sockets held open by an asyncio loop in a thread of its own."""

    def __init__(self, port: int, streams: list[str], count: int):
        self.port, self.streams, self.count = port, streams, count
        self.loop = asyncio.new_event_loop()
        self.open = 0
        self.failures: list[str] = []
        self.live_at: list[float] = []
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, timeout: float = 600) -> float:
        """Open every socket; returns the seconds it took."""
        started = time.monotonic()
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"{self.open} of {self.count} sockets open after {timeout}s")
        return time.monotonic() - started

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        opening = asyncio.Semaphore(64)  # handshakes in flight at once
        opened = [asyncio.Event() for _ in range(self.count)]
        tasks = [
            asyncio.create_task(self._viewer(i, opening, opened[i])) for i in range(self.count)
        ]
        for event in opened:
            await event.wait()
        self._ready.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _viewer(self, index: int, opening: asyncio.Semaphore, opened: asyncio.Event):
        # 127.0.0.2, .3, ...: at most PER_ADDRESS sockets per client address.
        address = f"127.0.{2 + index // PER_ADDRESS // 250}.{2 + index // PER_ADDRESS % 250}"
        url = f"ws://127.0.0.1:{self.port}/ws/streams/{self.streams[index % len(self.streams)]}"
        try:
            async with opening:
                socket = await connect(
                    url,
                    local_addr=(address, 0),
                    ping_interval=None,
                    open_timeout=120,
                    compression=None,
                    proxy=None,
                )
                first = json.loads(await socket.recv())
                if first.get("type") != "status":
                    raise RuntimeError(f"first message {first}")
            self.open += 1
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            opened.set()
            return
        opened.set()
        try:
            async for message in socket:
                if json.loads(message).get("status") == "live":
                    self.live_at.append(time.monotonic())
        finally:
            self.open -= 1
            await socket.close()


class ViewersProcess:
    """`Viewers` in a process of their own, so the clients holding thousands
    of sockets do not share an interpreter lock with the timed requests."""

    def __init__(self, port: int, streams: list[str], count: int):
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(
            target=_serve_viewers, args=(child, port, streams, count), daemon=True
        )
        self.failures: list[str] = []

    def start(self) -> float:
        """Open every socket; returns the seconds it took."""
        self._process.start()
        seconds, self.failures = self._ask("started")
        return seconds

    @property
    def open(self) -> int:
        return self._ask("open")

    @property
    def live_at(self) -> list[float]:
        return self._ask("live_at")

    def clear_live(self) -> None:
        self._ask("clear_live")

    def stop(self) -> None:
        if self._process.is_alive():
            self._ask("stop")
        self._process.join(timeout=60)

    def _ask(self, command: str):
        if command != "started":
            self._conn.send(command)
        if not self._conn.poll(900):
            raise RuntimeError(f"the viewers process did not answer {command!r}")
        return self._conn.recv()


def _serve_viewers(conn, port: int, streams: list[str], count: int) -> None:
    viewers = Viewers(port, streams, count)
    conn.send((viewers.start(), viewers.failures))
    while True:
        command = conn.recv()
        if command == "open":
            conn.send(viewers.open)
        elif command == "live_at":
            conn.send(list(viewers.live_at))  # CLOCK_MONOTONIC: the same in every process
        elif command == "clear_live":
            viewers.live_at.clear()
            conn.send(None)
        elif command == "stop":
            viewers.stop()
            conn.send(None)
            return


# --- timed requests -----------------------------------------------------------------


def measure(
    port: int,
    hooks_port: int,
    streams: list[tuple[str, str]],
    duration: float,
    clients: tuple[int, int],
):
    """Callbacks (on_publish + on_unpublish pairs on unwatched streams) on the
    callback tier at hooks_port, then watch pages through nginx at port, from
    (callback, page) client threads; returns (callbacks, pages)."""
    fixture = json.loads((ROOT / "tests/fixtures/srs5/on_publish.json").read_text())
    path = f"/hooks/srs?token={HOOK_TOKEN}"
    run = secrets.token_hex(3)
    callbacks, pages = Phase("POST /hooks/srs", clients[0]), Phase("GET /watch/<id>", clients[1])

    def hooks(index: int):
        client = http.client.HTTPConnection("127.0.0.1", hooks_port, timeout=60)
        public_id, key = streams[index]
        counter = iter(range(10**9))
        check = _expect(200, code_zero=True)

        def pair():
            body = fixture | {
                "stream": public_id,
                "param": f"?secret={key}",
                "stream_url": f"/live/{public_id}",
                "client_id": f"s{run}-{index}-{next(counter)}",
            }
            publish = timed(_Conn(client), "POST", path, body, check=check)
            body = body | {"action": "on_unpublish"}
            return [publish, timed(_Conn(client), "POST", path, body, check=check)]

        return pair

    def watch(index: int):
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        public_id = streams[index][0]
        return lambda: [timed(_Conn(client), "GET", f"/watch/{public_id}", check=_expect(200))]

    # One after the other (as bench/api_latency.py does): on 2 shared cores,
    # page load running beside the callbacks measures the CPU queue, not the
    # sockets' effect.
    run_phase(callbacks, clients[0], duration, hooks)
    run_phase(pages, clients[1], duration, watch)
    return callbacks, pages


class _Conn:
    """bench.api_latency.timed's client interface over one connection."""

    def __init__(self, connection: http.client.HTTPConnection):
        self.connection = connection

    def call(self, method, path, body, headers):
        self.connection.request(method, path, body=body, headers=headers)
        reply = self.connection.getresponse()
        return reply.status, reply.read()


def _expect(status_wanted: int, code_zero: bool = False):
    def check(status: int, reply: bytes) -> str | None:
        if status != status_wanted:
            return f"HTTP {status}: {reply[:120]!r}"
        if code_zero and json.loads(reply).get("code") != 0:
            return f"refused: {reply[:120]!r}"
        return None

    return check


def fan_out(
    hooks_port: int, viewers: ViewersProcess, stream: tuple[str, str], watchers: int
) -> float:
    """Publish on a watched stream; seconds until all its watchers saw "live"."""
    fixture = json.loads((ROOT / "tests/fixtures/srs5/on_publish.json").read_text())
    public_id, key = stream
    body = fixture | {"stream": public_id, "param": f"?secret={key}", "client_id": "fanout"}
    client = http.client.HTTPConnection("127.0.0.1", hooks_port, timeout=60)
    viewers.clear_live()
    started = time.monotonic()
    client.request(
        "POST",
        f"/hooks/srs?token={HOOK_TOKEN}",
        json.dumps(body),
        {"Content-Type": "application/json"},
    )
    client.getresponse().read()
    deadline = started + 60
    while len(seen := viewers.live_at) < watchers and time.monotonic() < deadline:
        time.sleep(0.05)
    if len(seen) < watchers:
        raise RuntimeError(f"{len(seen)} of {watchers} watchers saw the event")
    return max(seen) - started


# --- report ---------------------------------------------------------------------------


def row(label: str, phase: Phase) -> str:
    errors = f"{len(phase.errors)}" + (f" ({phase.errors[0][:60]})" if phase.errors else "")
    return (
        f"| {label} | {phase.name} | {len(phase.latencies)} | {phase.percentile(50):.1f} | "
        f"{phase.percentile(95):.1f} | {phase.percentile(99):.1f} | {errors} |"
    )


def report(args, results: dict) -> str:
    idle_hooks, idle_pages, held_hooks, held_pages = results["phases"]
    per_socket = results["memory"]
    addresses = (args.sockets + PER_ADDRESS - 1) // PER_ADDRESS
    return f"""{SECTION}

`make bench-sockets` (`bench/sockets.py`): the stack as deployed, on one machine:
nginx's front site (the routing and the per-address limit of
deploy/nginx/studio.conf, {PER_ADDRESS} sockets per address) in front of the web tier
(gunicorn gthread, gunicorn.conf.py: 2 workers x 16 threads) and the socket tier
(gunicorn gevent, gunicorn_sockets.conf.py: {args.socket_workers} workers), the callback
tier (gunicorn gthread, gunicorn_hooks.conf.py: 2 workers x 8 threads), PostgreSQL and
Redis. {args.sockets} `/ws/streams/<id>` sockets (asyncio `websockets` client, from
{addresses} loopback addresses, {WATCHED_STREAMS} streams) each wait for their first
status event and stay open; callbacks are timed on the callback tier (where the
engines' hook URL points) and watch pages through nginx
({args.hook_clients} callback, then {args.page_clients} page client threads with keep-alive,
{args.duration:.0f} s each) before the sockets open and while they are held.
Client, servers and databases share the machine.

- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Machine: {machine()}; load average {results["load"][0]:.2f} before, {results["load"][1]:.2f} after
  (shared with other work: treat the numbers as an upper bound)
- Sockets held: **{results["held"]}** of {args.sockets} (opened in {results["open_seconds"]:.1f} s;
  refused or failed: {len(results["failures"])}); still open after the timed phase:
  {results["still_open"]}
- Memory per socket: socket tier **{per_socket["sockets"]:.1f} KiB** (PSS
  {per_socket["sockets_before"] / 1024:.0f} -> {per_socket["sockets_after"] / 1024:.0f} MiB),
  nginx {per_socket["nginx"]:.1f} KiB
- CPU of the socket tier holding them idle: {results["idle_cpu"] * 100:.0f}% of one core
- Fan-out: one status change reached all {results["watchers"]} sockets watching that stream
  in {results["fan_out"] * 1000:.0f} ms

| Sockets open | Request | Requests | p50 ms | p95 ms | p99 ms | Errors |
|---|---|---|---|---|---|---|
{row("0", idle_hooks)}
{row("0", idle_pages)}
{row(str(results["held"]), held_hooks)}
{row(str(results["held"]), held_pages)}

Targets: callbacks p95 < 50 ms, pages p95 < 200 ms with 2,000 sockets held. The
clients holding the sockets run in a process of their own: inside the measuring
process their interpreter-lock waits showed up as request latency.
Before the socket tier, websockets ran on the web tier's threads: about 32 sockets
left no thread for pages or callbacks (callbacks took 28-30 s; SRS gives up at 30 s).
"""


def write_section(text: str, section: str = SECTION) -> None:
    """Replace a section ("Websockets" by default) of docs/benchmarks.md
    (others are kept)."""
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = current.find(section)
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(section))
        updated = current[:start] + text + (current[end + 1 :] if end != -1 else "")
    DOC.write_text(updated.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--socket-workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--hook-clients", type=int, default=1)
    parser.add_argument("--page-clients", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    studio = Studio(args.socket_workers)
    viewers = None
    try:
        clients = (args.hook_clients, args.page_clients)
        streams = seed(studio.env, WATCHED_STREAMS + max(clients))
        watched, unwatched = streams[:WATCHED_STREAMS], streams[WATCHED_STREAMS:]
        idle = measure(studio.port, studio.hooks_port, unwatched, args.duration, clients)
        memory = {
            "sockets_before": pss_kib(studio.sockets.process.pid),
            "nginx_before": pss_kib(studio.nginx.executor.process.pid),
        }
        viewers = ViewersProcess(studio.port, [p for p, _ in watched], args.sockets)
        open_seconds = viewers.start()
        held = viewers.open
        print(f"{held} sockets open in {open_seconds:.1f}s", file=sys.stderr)
        time.sleep(2)  # let the servers settle before reading their memory
        memory["sockets_after"] = pss_kib(studio.sockets.process.pid)
        memory["nginx_after"] = pss_kib(studio.nginx.executor.process.pid)
        memory["sockets"] = (memory["sockets_after"] - memory["sockets_before"]) / max(held, 1)
        memory["nginx"] = (memory["nginx_after"] - memory["nginx_before"]) / max(held, 1)
        # What holding idle sockets costs (server pings, the handlers' ticks).
        sockets_pid = studio.sockets.process.pid
        cpu_before, idle_from = cpu_seconds(sockets_pid), time.monotonic()
        time.sleep(args.duration)
        idle_cpu = (cpu_seconds(sockets_pid) - cpu_before) / (time.monotonic() - idle_from)
        loaded = measure(studio.port, studio.hooks_port, unwatched, args.duration, clients)
        still_open = viewers.open
        watchers = len(range(0, args.sockets, WATCHED_STREAMS))
        fan = fan_out(studio.hooks_port, viewers, watched[0], watchers)
        results = {
            "phases": [*idle, *loaded],
            "memory": memory,
            "held": held,
            "open_seconds": open_seconds,
            "failures": viewers.failures,
            "still_open": still_open,
            "watchers": watchers,
            "fan_out": fan,
            "load": (load_before, os.getloadavg()[0]),
            "idle_cpu": idle_cpu,
        }
    finally:
        if viewers is not None:
            viewers.stop()
        studio.stop()
    text = report(args, results)
    print(text)
    if viewers.failures:
        print("first failures:", viewers.failures[:5], file=sys.stderr)
    if not args.no_write:
        write_section(text)
        print(f"Written to {DOC.relative_to(ROOT)}.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
