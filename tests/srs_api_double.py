"""SrsApiTestDouble: a stand-in for SRS 5's HTTP API (SRS cannot run here).

Serves `GET /api/v1/streams/` in the shape recorded from a real SRS 5.0.216
(tests/fixtures/srs5/api_v1_streams.json) from a list of publishers the test
controls, and `DELETE /api/v1/clients/{id}` (kick) which removes the
publisher and records the call. `down = True` makes it answer 500.
"""

from __future__ import annotations

import copy
import http.server
import threading

from tests.conftest import load_fixture
from tests.json_http import JsonHandler


class SrsApiTestDouble(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.template = load_fixture("api_v1_streams.json")
        self.service = self.template["service"]
        self.publishers: dict[str, str] = {}  # stream name -> client id
        self.kicked: list[str] = []
        self.down = False
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def publish(self, stream: str, client_id: str) -> None:
        with self.lock:
            self.publishers[stream] = client_id

    def streams_body(self) -> dict:
        with self.lock:
            body = copy.deepcopy(self.template)
            body["service"] = self.service
            item = self.template["streams"][0]
            body["streams"] = []
            for name, client_id in self.publishers.items():
                stream = copy.deepcopy(item)
                stream.update(name=name, url=f"/live/{name}")
                stream["publish"] = {"active": True, "cid": client_id}
                body["streams"].append(stream)
            return body

    def kick(self, client_id: str) -> bool:
        with self.lock:
            self.kicked.append(client_id)
            for name, cid in list(self.publishers.items()):
                if cid == client_id:
                    del self.publishers[name]
                    return True
            return False

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(JsonHandler):
    server: SrsApiTestDouble

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.server.down:
            return self._reply(500, {"code": 1})
        if self.path.startswith("/api/v1/streams/"):
            return self._reply(200, self.server.streams_body())
        return self._reply(404, {"code": 404})

    def do_DELETE(self):  # noqa: N802
        if self.server.down:
            return self._reply(500, {"code": 1})
        prefix = "/api/v1/clients/"
        if not self.path.startswith(prefix):
            return self._reply(404, {"code": 404})
        found = self.server.kick(self.path[len(prefix) :].strip("/"))
        # SRS answers code 0 for a kicked client, an error code when it has none.
        return self._reply(200, {"code": 0 if found else 2049})
