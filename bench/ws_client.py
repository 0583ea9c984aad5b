"""A minimal websocket client for benchmarks: raw asyncio sockets, a small
frame parser and one regex per text frame, so thousands of clients need
less CPU than the server they measure (a websocket library spends far more
per frame). Server frames must be uncompressed (no extension is offered)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
import time

# What a benchmark message carries: its send time in microseconds (CLOCK_MONOTONIC).
MARK = re.compile(rb"bench-(\d+)-")


class Chatter(asyncio.Protocol):
    """One socket: the handshake, then every server frame scanned for message
    marks; pings answered; `send` writes a masked text frame."""

    def __init__(self, sink):
        self.sink = sink  # callable(mark, arrival) for each message seen
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
