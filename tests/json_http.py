"""The request handler of this suite's stand-in HTTP APIs: JSON replies, no
access log on stderr."""

from __future__ import annotations

import http.server
import json


class JsonHandler(http.server.BaseHTTPRequestHandler):
    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass
