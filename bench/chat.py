"""Live chat under load through the real stack (`make bench-chat`).

The stack of bench/sockets.py (its `Studio`): nginx's front site, the web,
socket and callback tiers, PostgreSQL and Redis, as deployed on one machine,
with nginx's X-Forwarded-For trusted (STUDIO_PROXY_HOPS=1) so the chat's
per-address limits see each client address, as behind the production proxy.
The chat's limits stay as deployed: the load is spread so that no
participant or address exceeds them.

1. One live stream (an on_publish callback).
2. N chatters (default 1,000) open `/ws/streams/<id>` through nginx from
   loopback addresses (at most 20 per address) and wait for `chat.history`.
   The clients are raw asyncio sockets in processes of their own
   (`--client-processes`): a small frame parser and one regex per frame
   find the messages, so the clients need less CPU than the server they
   measure (a websocket library spends far more per frame).
3. Memory the socket tier and nginx gained per connection (PSS).
4. For `--duration` seconds, `--rate` messages a second are written
   (`chat.send`) by a fifth of the chatters in turn; each message's delivery
   latency to every chatter is measured (send to arrival, one clock).
   Meanwhile a thread times media-server callbacks (on_publish +
   on_unpublish pairs of other streams) on the callback tier.

Writes the results to docs/benchmarks.md (section "Chat").

Usage: python bench/chat.py [--chatters 1000] [--rate 50] [--duration 30] [--no-write]
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

from bench.api_latency import Phase, machine  # noqa: E402
from bench.sockets import HOOK_TOKEN, Studio, cpu_seconds, pss_kib, seed, write_section  # noqa: E402
from bench.ws_client import open_chatter  # noqa: E402

DOC_SECTION = "## Chat"
PER_ADDRESS = 20
SENDER_EVERY = 5  # one chatter in five writes
GOAL_P95_MS = 250


# --- the chatters' processes ---------------------------------------------------------


def run_chatters(conn, port, public_id, first, count, rate, duration):
    """In a process of its own: open chatters `first`..`first + count - 1`,
    report, then on "go" send `rate` messages a second for `duration` s;
    report latencies. Each message carries its send time (CLOCK_MONOTONIC,
    the same in every process), so any process can time any message."""
    asyncio.run(_chatters(conn, port, public_id, first, count, rate, duration))


async def _chatters(conn, port, public_id, first, count, rate, duration):
    latencies: list[float] = []

    def sink(sent_us: int, arrival: float) -> None:
        latencies.append(arrival - sent_us / 1e6)

    started = time.monotonic()
    opening = asyncio.Semaphore(16)
    failures: list[str] = []

    async def one(index: int):
        group = index // PER_ADDRESS
        address = f"127.0.{10 + group // 250}.{2 + group % 250}"
        async with opening:
            try:
                return await open_chatter(port, address, f"/ws/streams/{public_id}", sink)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return None

    found = await asyncio.gather(*(one(i) for i in range(first, first + count)))
    chatters = [c for c in found if c]
    conn.send({"open": len(chatters), "seconds": time.monotonic() - started, "failures": failures})
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"

    cpu_before = time.process_time()
    senders = chatters[::SENDER_EVERY]
    anon = [secrets.token_urlsafe(16) for _ in senders]
    interval = 1.0 / rate
    begin = time.monotonic()
    seq = 0
    while time.monotonic() < begin + duration:
        index = seq % len(senders)
        sent_us = int(time.monotonic() * 1e6)
        frame = {
            "type": "chat.send",
            "text": f"bench-{sent_us}- hello from chatter {first + index} 👋",
            "name": f"Chatter {first + index}",
            "anon": anon[index],
        }
        senders[index].send(json.dumps(frame))
        seq += 1
        await asyncio.sleep(max(0.0, begin + seq * interval - time.monotonic()))
    await asyncio.sleep(5)  # let the last messages arrive
    conn.send(
        {
            "sent": seq,
            "chatters": len(chatters),
            "latencies": latencies,
            "closed": sum(1 for c in chatters if c.closed),
            "cpu": (time.process_time() - cpu_before) / (time.monotonic() - begin),
        }
    )
    for chatter in chatters:
        chatter.transport.close()


# --- callbacks meanwhile --------------------------------------------------------------


def time_callbacks(hooks_port: int, streams, stop: threading.Event, phase: Phase) -> None:
    fixture = json.loads((ROOT / "tests/fixtures/srs5/on_publish.json").read_text())
    client = http.client.HTTPConnection("127.0.0.1", hooks_port, timeout=60)
    run = secrets.token_hex(3)
    n = 0
    while not stop.is_set():
        public_id, key = streams[n % len(streams)]
        body = fixture | {
            "stream": public_id,
            "param": f"?secret={key}",
            "stream_url": f"/live/{public_id}",
            "client_id": f"c{run}-{n}",
        }
        for action in ("on_publish", "on_unpublish"):
            started = time.perf_counter()
            client.request(
                "POST",
                f"/hooks/srs?token={HOOK_TOKEN}",
                json.dumps(body | {"action": action}),
                {"Content-Type": "application/json"},
            )
            reply = client.getresponse()
            data = reply.read()
            phase.latencies.append(time.perf_counter() - started)
            if reply.status != 200 or json.loads(data).get("code") != 0:
                phase.errors.append(f"HTTP {reply.status}: {data[:80]!r}")
        n += 1
        stop.wait(0.1)


def go_live(hooks_port: int, stream: tuple[str, str]) -> None:
    fixture = json.loads((ROOT / "tests/fixtures/srs5/on_publish.json").read_text())
    public_id, key = stream
    body = fixture | {"stream": public_id, "param": f"?secret={key}", "client_id": "chat-bench"}
    client = http.client.HTTPConnection("127.0.0.1", hooks_port, timeout=60)
    client.request(
        "POST",
        f"/hooks/srs?token={HOOK_TOKEN}",
        json.dumps(body),
        {"Content-Type": "application/json"},
    )
    reply = client.getresponse()
    assert reply.status == 200 and json.loads(reply.read()).get("code") == 0, "publish refused"


# --- report ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index] * 1000


def report(args, r: dict) -> str:
    lat = r["latencies"]
    hooks: Phase = r["hooks"]
    verdict = "met" if percentile(lat, 95) < GOAL_P95_MS else "**not met**"
    return f"""{DOC_SECTION}

`make bench-chat` (`bench/chat.py`): the stack of `make bench-sockets` (nginx's
front site, web, socket tier with {args.socket_workers} gevent workers, callback tier,
PostgreSQL, Redis) on one machine, nginx's X-Forwarded-For trusted so per-address
limits see each client. {args.chatters} chatters on one live stream (raw asyncio
websocket clients in {args.client_processes} processes of their own, at most
{PER_ADDRESS} per loopback address); one in {SENDER_EVERY} writes, in turn,
{args.rate:.0f} messages a second in all for {args.duration:.0f} s, within the chat's
deployed limits (per participant, per address). Latency: from the client writing
`chat.send` to each chatter reading the `chat.message` (the socket tier stores it
in PostgreSQL, publishes it on Redis, every socket process relays it).
Media-server callbacks (on_publish + on_unpublish pairs of other streams) are
timed on the callback tier meanwhile.

- Date: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
- Machine: {machine()}; load average {r["load"][0]:.2f} before, {r["load"][1]:.2f} after
  (shared with other work: treat the numbers as an upper bound)
- Chatters connected: **{r["open"]}** of {args.chatters} in {r["open_seconds"]:.1f} s
  (failed: {len(r["failures"])}); closed by the server during the run: {r["closed"]}
- Memory per connection: socket tier **{r["memory"]["sockets"]:.1f} KiB** (PSS
  {r["memory"]["sockets_before"] / 1024:.0f} -> {r["memory"]["sockets_after"] / 1024:.0f} MiB),
  nginx {r["memory"]["nginx"]:.1f} KiB
- Messages sent: {r["sent"]} ({r["sent"] / args.duration:.1f}/s); deliveries
  {r["delivered"]} of {r["expected"]} expected ({100 * r["delivered"] / max(r["expected"], 1):.2f}%)
- Delivery latency: p50 **{percentile(lat, 50):.0f} ms**, p95 **{percentile(lat, 95):.0f} ms**,
  p99 {percentile(lat, 99):.0f} ms, max {percentile(lat, 100):.0f} ms
  (goal p95 < {GOAL_P95_MS} ms: {verdict})
- CPU during the run: socket tier {r["cpu"] * 100:.0f}% of one core
  ({r["delivered"] / max(r["cpu"] * r["seconds"], 1e-9) / 1000:.0f}k deliveries per CPU-second),
  the chatters' {args.client_processes} processes {r["client_cpu"] * 100:.0f}%
- Callbacks meanwhile: {len(hooks.latencies)} requests, p50 {hooks.percentile(50):.1f} ms,
  p95 {hooks.percentile(95):.1f} ms, max {hooks.percentile(100):.1f} ms, errors {len(hooks.errors)}
  (target p95 < 50 ms; SRS gives up at 30 s)
"""


def _answer(conn, process, timeout: float = 900):
    """The chatters' next report; fails if their process died."""
    deadline = time.monotonic() + timeout
    while not conn.poll(1):
        if not process.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the chatters' process ended without reporting")
    return conn.recv()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chatters", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--socket-workers", type=int, default=2)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    studio = Studio(args.socket_workers, {"STUDIO_PROXY_HOPS": "1"})
    processes: list = []
    try:
        streams = seed(studio.env, 6)
        chat_stream, others = streams[0], streams[1:]
        go_live(studio.hooks_port, chat_stream)
        memory = {
            "sockets_before": pss_kib(studio.sockets.process.pid),
            "nginx_before": pss_kib(studio.nginx.executor.process.pid),
        }
        processes = []
        share = args.chatters // args.client_processes
        for n in range(args.client_processes):
            conn, child = multiprocessing.Pipe()
            count = share if n < args.client_processes - 1 else args.chatters - share * n
            process = multiprocessing.Process(
                target=run_chatters,
                args=(
                    child,
                    studio.port,
                    chat_stream[0],
                    share * n,
                    count,
                    args.rate / args.client_processes,
                    args.duration,
                ),
                daemon=True,
            )
            process.start()
            processes.append((conn, process))
        reports = [_answer(conn, process) for conn, process in processes]
        opened = {
            "open": sum(r["open"] for r in reports),
            "seconds": max(r["seconds"] for r in reports),
            "failures": [f for r in reports for f in r["failures"]],
        }
        print(f"{opened['open']} chatters in {opened['seconds']:.1f}s", file=sys.stderr)
        time.sleep(2)  # let the servers settle before reading their memory
        memory["sockets_after"] = pss_kib(studio.sockets.process.pid)
        memory["nginx_after"] = pss_kib(studio.nginx.executor.process.pid)
        held = max(opened["open"], 1)
        memory["sockets"] = (memory["sockets_after"] - memory["sockets_before"]) / held
        memory["nginx"] = (memory["nginx_after"] - memory["nginx_before"]) / held

        hooks, stop = Phase("POST /hooks/srs", 1), threading.Event()
        timer = threading.Thread(
            target=time_callbacks, args=(studio.hooks_port, others, stop, hooks), daemon=True
        )
        cpu_before, cpu_from = cpu_seconds(studio.sockets.process.pid), time.monotonic()
        timer.start()
        for conn, _ in processes:
            conn.send("go")
        parts = [_answer(conn, process) for conn, process in processes]
        sent = sum(p["sent"] for p in parts)
        result = {
            "sent": sent,
            "expected": sent * opened["open"],
            "delivered": sum(len(p["latencies"]) for p in parts),
            "latencies": [x for p in parts for x in p["latencies"]],
            "closed": sum(p["closed"] for p in parts),
            "client_cpu": sum(p["cpu"] for p in parts),
        }
        stop.set()
        timer.join(timeout=60)
        seconds = time.monotonic() - cpu_from
        cpu = (cpu_seconds(studio.sockets.process.pid) - cpu_before) / seconds
        results = {
            **result,
            "open": opened["open"],
            "open_seconds": opened["seconds"],
            "failures": opened["failures"],
            "memory": memory,
            "hooks": hooks,
            "cpu": cpu,
            "seconds": seconds,
            "load": (load_before, os.getloadavg()[0]),
        }
    finally:
        for _, process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
        studio.stop()
    text = report(args, results)
    print(text)
    if results["failures"]:
        print("first failures:", results["failures"][:5], file=sys.stderr)
    if not args.no_write:
        write_section(text, DOC_SECTION)
        print("Written to docs/benchmarks.md.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
