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
   The clients are raw asyncio sockets in a process of their own: one regex
   per read finds the messages, so the client does not need more CPU than
   the server it measures (a websocket library spends far more per frame).
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
import base64
import http.client
import json
import multiprocessing
import os
import re
import secrets
import struct
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_latency import Phase, machine  # noqa: E402
from bench.sockets import HOOK_TOKEN, Studio, cpu_seconds, pss_kib, seed, write_section  # noqa: E402

DOC_SECTION = "## Chat"
PER_ADDRESS = 20
SENDER_EVERY = 5  # one chatter in five writes
MARK = re.compile(rb"bench-(\d+)-")
GOAL_P95_MS = 250


# --- a minimal websocket client ---------------------------------------------------


class Chatter(asyncio.Protocol):
    """One socket: the handshake, then every server frame scanned for message
    marks; pings answered; `send` writes a masked text frame."""

    def __init__(self, sink):
        self.sink = sink  # callable(seq, arrival) for each message seen
        self.transport = None
        self.upgraded = asyncio.get_running_loop().create_future()
        self.history = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end == -1:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(head.split(b"\r\n", 1)[0].decode()))
                return
            self.upgraded.set_result(True)
        self._frames()

    def _frames(self):
        now = time.monotonic()
        buffer, offset = self.buffer, 0
        while len(buffer) - offset >= 2:
            opcode, length = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F
            start = offset + 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length, start = struct.unpack_from(">H", buffer, offset + 2)[0], offset + 4
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length, start = struct.unpack_from(">Q", buffer, offset + 2)[0], offset + 10
            if len(buffer) < start + length:
                break
            payload = buffer[start : start + length]
            offset = start + length
            if opcode == 0x9:  # ping: pong with the same payload
                self._write(0xA, payload)
            elif opcode == 0x8:
                self.closed = True
            elif opcode == 0x1:
                if not self.history.done() and b'"chat.history"' in payload[:40]:
                    self.history.set_result(True)
                for match in MARK.finditer(payload):
                    self.sink(int(match.group(1)), now)
        self.buffer = buffer[offset:]

    def send(self, text: str) -> None:
        self._write(0x1, text.encode())

    def _write(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, length)
        key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big") if length else b""
        self.transport.write(head + mask + masked)

    def connection_lost(self, exc):
        self.closed = True


async def open_chatter(port: int, address: str, path: str, sink) -> Chatter:
    loop = asyncio.get_running_loop()
    _, chatter = await loop.create_connection(
        lambda: Chatter(sink), "127.0.0.1", port, local_addr=(address, 0)
    )
    key = base64.b64encode(os.urandom(16)).decode()
    chatter.transport.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
    )
    await asyncio.wait_for(chatter.upgraded, 120)
    await asyncio.wait_for(chatter.history, 120)
    return chatter


# --- the chatters' process ----------------------------------------------------------


def run_chatters(conn, port: int, public_id: str, count: int, rate: float, duration: float):
    """In a process of its own: open `count` chatters, report, then on
    "go" send `rate` messages a second for `duration` s; report latencies."""
    asyncio.run(_chatters(conn, port, public_id, count, rate, duration))


async def _chatters(conn, port, public_id, count, rate, duration):
    sent: dict[int, float] = {}
    latencies: list[float] = []
    delivered = [0]

    def sink(seq: int, arrival: float) -> None:
        at = sent.get(seq)
        if at is not None:
            latencies.append(arrival - at)
            delivered[0] += 1

    started = time.monotonic()
    opening = asyncio.Semaphore(32)
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

    chatters = [c for c in await asyncio.gather(*(one(i) for i in range(count))) if c]
    conn.send({"open": len(chatters), "seconds": time.monotonic() - started, "failures": failures})
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # "go"

    senders = chatters[::SENDER_EVERY]
    anon = [secrets.token_urlsafe(16) for _ in senders]
    interval = 1.0 / rate
    begin = time.monotonic()
    seq = 0
    while time.monotonic() < begin + duration:
        index = seq % len(senders)
        frame = {
            "type": "chat.send",
            "text": f"bench-{seq}- hello from chatter {index} 👋",
            "name": f"Chatter {index}",
            "anon": anon[index],
        }
        sent[seq] = time.monotonic()
        senders[index].send(json.dumps(frame))
        seq += 1
        await asyncio.sleep(max(0.0, begin + seq * interval - time.monotonic()))
    await asyncio.sleep(5)  # let the last messages arrive
    expected = seq * len(chatters)
    conn.send(
        {
            "sent": seq,
            "expected": expected,
            "delivered": delivered[0],
            "latencies": latencies,
            "closed": sum(1 for c in chatters if c.closed),
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

`make bench-chat` (`bench/chat.py`): the stack of `make bench-sockets` (nginx's front
site, web, socket tier with {args.socket_workers} gevent workers, callback tier,
PostgreSQL, Redis) on one machine, nginx's X-Forwarded-For trusted so per-address
limits see each client. {args.chatters} chatters on one live stream (raw asyncio
websocket clients in a process of their own, at most {PER_ADDRESS} per loopback
address); one in {SENDER_EVERY} writes, in turn, {args.rate:.0f} messages a second in all
for {args.duration:.0f} s, within the chat's deployed limits (per participant, per
address). Latency: from the client writing `chat.send` to each chatter reading the
`chat.message` (the socket tier stores it in PostgreSQL, publishes it on Redis, every
socket process relays it). Media-server callbacks (on_publish + on_unpublish pairs of
other streams) are timed on the callback tier meanwhile.

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
- Socket tier CPU during the run: {r["cpu"] * 100:.0f}% of one core
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
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    studio = Studio(args.socket_workers, {"STUDIO_PROXY_HOPS": "1"})
    process = None
    try:
        streams = seed(studio.env, 6)
        chat_stream, others = streams[0], streams[1:]
        go_live(studio.hooks_port, chat_stream)
        memory = {
            "sockets_before": pss_kib(studio.sockets.process.pid),
            "nginx_before": pss_kib(studio.nginx.executor.process.pid),
        }
        conn, child = multiprocessing.Pipe()
        process = multiprocessing.Process(
            target=run_chatters,
            args=(child, studio.port, chat_stream[0], args.chatters, args.rate, args.duration),
            daemon=True,
        )
        process.start()
        opened = _answer(conn, process)
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
        conn.send("go")
        result = _answer(conn, process)
        stop.set()
        timer.join(timeout=60)
        cpu = (cpu_seconds(studio.sockets.process.pid) - cpu_before) / (time.monotonic() - cpu_from)
        results = {
            **result,
            "open": opened["open"],
            "open_seconds": opened["seconds"],
            "failures": opened["failures"],
            "memory": memory,
            "hooks": hooks,
            "cpu": cpu,
            "load": (load_before, os.getloadavg()[0]),
        }
    finally:
        if process is not None:
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
