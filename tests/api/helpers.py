"""Calling the JSON API as a client would."""

from __future__ import annotations

import json


class Api:
    """A test client that sends `Authorization: Bearer <token>` and JSON bodies."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def call(self, method: str, path: str, body: object = None, **kwargs):
        if body is not None:
            kwargs.setdefault("data", json.dumps(body))
            kwargs.setdefault("content_type", "application/json")
        headers = self.headers() | kwargs.pop("headers", {})
        return self.client.open("/api/v1" + path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: object = None, **kwargs):
        return self.call("POST", path, body, **kwargs)

    def patch(self, path: str, body: object = None, **kwargs):
        return self.call("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.call("DELETE", path, **kwargs)
