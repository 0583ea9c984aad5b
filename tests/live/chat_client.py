"""A chat client over the stream socket, for the chat tests."""

from __future__ import annotations

import json
import secrets

from tests.e2e.golive.harness import login
from tests.live.conftest import browser_headers, ws_url
from tests.live.test_websocket import Socket, publish


class Chatter(Socket):
    """A stream socket that speaks chat: anonymous unless given a login."""

    def __init__(self, url: str, headers: dict | None = None, name: str = "Viewer"):
        super().__init__(url, headers)
        self.anon = secrets.token_urlsafe(18)
        self.name = name
        self.hello = self.next(lambda e: e["type"] == "chat.history")

    def frame(self, **fields) -> None:
        self.ws.send(json.dumps(fields))

    def say(self, text: str, **extra) -> None:
        fields = {"name": self.name, "anon": self.anon, **extra}
        self.frame(type="chat.send", text=text, **fields)

    def message(self, text: str, timeout: float = 20.0) -> dict:
        """The chat.message carrying `text`."""
        event = self.next(
            lambda e: e["type"] == "chat.message" and e["message"]["text"] == text, timeout
        )
        return event["message"]

    def error(self, timeout: float = 20.0) -> dict:
        return self.next(lambda e: e["type"] == "chat.error", timeout)

    def said(self, text: str) -> dict:
        """Say `text` and wait for it to come back."""
        self.say(text)
        return self.message(text)


def live_stream(client, make_stream, owner=None):
    """A stream made live by a publish callback (chat is open only while live)."""
    stream = make_stream(owner=owner)
    publish(client, stream)
    return stream


def signed_in(base_url: str, user) -> dict:
    """Socket headers of a browser logged in as `user`."""
    return browser_headers(login(base_url, user.email))


__all__ = ["Chatter", "live_stream", "signed_in", "ws_url"]
