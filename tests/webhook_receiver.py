"""A real HTTP receiver of webhooks for tests (a local ThreadingHTTPServer),
and the signature check of docs/webhooks.md, run as documented."""

from __future__ import annotations

import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP server: records every request, answers with the next
    scripted status (then `default`); while `hold` is set it keeps each
    request waiting until `release` is set."""

    url: str
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    redirect_to: str = ""
    answered: int = 0


@contextmanager
def serve(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A Receiver listening on 127.0.0.1 until the block ends (HTTPS with
    the server context `tls`)."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, dict(self.headers), body))
            if state.hold.is_set():
                state.holding.set()
                state.release.wait(30)
            status = state.statuses.pop(0) if state.statuses else state.default
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.redirect_to or "/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            state.answered += 1

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def documented_verify():
    """The `verify` function of the Python snippet in docs/webhooks.md."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert snippet, "docs/webhooks.md has no Python snippet"
    namespace: dict = {}
    exec(compile(snippet.group(1), "docs/webhooks.md", "exec"), namespace)  # noqa: S102
    return namespace["verify"]
