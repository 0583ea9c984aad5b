"""The studio under test, seen from outside: its pages, its API and the
ingest addresses the API hands out. Nothing here reads a database or a
process of the target; the same code drives a `make dev` on this machine or
a staging deployment.

Settings (environment variables, `make e2e` passes them through):
  BASE_URL            the studio's public origin; unset: the suite starts
                      its own stack (tests/e2e/conftest.py) and a creator
  E2E_EMAIL, E2E_PASSWORD   a creator account an operator made (BASE_URL only)
  E2E_TIMEOUT_SCALE   multiplies every wait (default 1; 3 on a slow network)
  E2E_INSECURE        1: accept the target's self-signed certificate
                      (`make dev`'s development certificate)
"""

from __future__ import annotations

import html
import os
import re
import secrets
from dataclasses import dataclass, field

import pytest
import requests
import urllib3

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
NEW_TOKEN = re.compile(r'id="new-token-value">([^<]+)<')
NOT_OFFERED = "not offered by this deployment"


def timeout_scale() -> float:
    """E2E_TIMEOUT_SCALE: one knob for every wait of the suite."""
    raw = os.environ.get("E2E_TIMEOUT_SCALE", "").strip() or "1"
    try:
        scale = float(raw)
    except ValueError:
        raise SystemExit(f"E2E_TIMEOUT_SCALE must be a number, got {raw!r}") from None
    if not 0.1 <= scale <= 20:
        raise SystemExit(f"E2E_TIMEOUT_SCALE must be between 0.1 and 20, got {scale}")
    return scale


def seconds(base: float) -> float:
    """A wait of `base` seconds on a normal target, scaled."""
    return base * timeout_scale()


class TargetError(AssertionError):
    """The target answered in a way the suite cannot go on from; the message
    says what was asked, what came back, and what usually causes it."""


@dataclass
class Target:
    base_url: str
    email: str
    password: str
    verify_tls: bool = True
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v1"

    def label(self, what: str) -> str:
        """A title or name that says the suite made it (and which run)."""
        return f"QA e2e {self.run_id} {what}"


class Creator:
    """The creator account, logged in through the pages; makes its own API
    token (revoked by `close`) and remembers every stream it creates so that
    `close` deletes them, whatever happened in between."""

    def __init__(self, target: Target):
        self.target = target
        self.pages = _session(target.verify_tls)
        # Like a browser: Flask-WTF checks the Referer of forms sent over HTTPS.
        self.pages.headers["Referer"] = f"{target.base_url}/"
        self.api = _session(target.verify_tls)
        self.token_name = target.label("token")
        self.streams: list[str] = []

    # --- pages --------------------------------------------------------------

    def _csrf(self, path: str) -> str:
        reply = self.pages.get(f"{self.target.base_url}{path}", timeout=seconds(15))
        if reply.status_code != 200:
            raise TargetError(f"GET {path} answered {reply.status_code}")
        found = CSRF.search(reply.text)
        if not found:
            raise TargetError(f"GET {path} has no form with a CSRF token")
        return found.group(1)

    def log_in(self) -> None:
        reply = self.pages.post(
            f"{self.target.base_url}/login",
            data={
                "email": self.target.email,
                "password": self.target.password,
                "csrf_token": self._csrf("/login"),
            },
            allow_redirects=False,
            timeout=seconds(15),
        )
        if reply.status_code != 302:
            cause = (
                "the form itself was refused (CSRF or bad input)"
                if reply.status_code == 400
                else "check E2E_EMAIL and E2E_PASSWORD"
            )
            raise TargetError(
                f"Logging in as {self.target.email} at {self.target.base_url}/login was "
                f"refused ({reply.status_code}): {cause}."
            )

    def make_token(self) -> None:
        reply = self.pages.post(
            f"{self.target.base_url}/tokens",
            data={"name": self.token_name, "csrf_token": self._csrf("/tokens")},
            timeout=seconds(15),
        )
        found = NEW_TOKEN.search(reply.text)
        if reply.status_code != 200 or not found:
            raise TargetError(f"Creating an API token on /tokens answered {reply.status_code}")
        self.api.headers["Authorization"] = f"Bearer {html.unescape(found.group(1)).strip()}"

    def revoke_token(self) -> None:
        """Revoke every token this run made (found by its name on /tokens)."""
        page = self.pages.get(f"{self.target.base_url}/tokens", timeout=seconds(15)).text
        for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
            if html.escape(self.token_name) not in row:
                continue
            action = re.search(r'action="([^"]+/revoke)"', row)
            token = CSRF.search(row)
            if action and token:
                self.pages.post(
                    f"{self.target.base_url}{html.unescape(action.group(1))}",
                    data={"csrf_token": token.group(1)},
                    timeout=seconds(15),
                )
        self.api.headers.pop("Authorization", None)

    # --- API ------------------------------------------------------------------

    def call(self, method: str, path: str, expect: int = 200, **kwargs) -> dict | None:
        reply = self.api.request(
            method, f"{self.target.api_url}{path}", timeout=seconds(15), **kwargs
        )
        if reply.status_code != expect:
            raise TargetError(
                f"{method} /api/v1{path} answered {reply.status_code}, expected {expect}: "
                f"{reply.text[:300]}"
            )
        return reply.json() if reply.content else None

    def create_stream(self, what: str, **fields: object) -> dict:
        body = {"title": self.target.label(what), **fields}
        stream = self.call("POST", "/streams", expect=201, json=body)
        self.streams.append(stream["id"])
        return stream

    def stream(self, stream_id: str) -> dict:
        return self.call("GET", f"/streams/{stream_id}")

    def delete_stream(self, stream_id: str) -> None:
        reply = self.api.delete(f"{self.target.api_url}/streams/{stream_id}", timeout=seconds(15))
        if reply.status_code not in (204, 404):
            raise TargetError(f"DELETE stream {stream_id} answered {reply.status_code}")
        if stream_id in self.streams:
            self.streams.remove(stream_id)

    def close(self) -> list[str]:
        """Delete what this run created; returns what could not be deleted."""
        left = []
        for stream_id in list(self.streams):
            try:
                self.delete_stream(stream_id)
            except (requests.RequestException, TargetError) as error:
                left.append(f"stream {stream_id}: {error}")
        try:
            self.revoke_token()
        except requests.RequestException as error:
            left.append(f"token {self.token_name}: {error}")
        return left


def _session(verify_tls: bool) -> requests.Session:
    session = requests.Session()
    if not verify_tls:
        # requests lets REQUESTS_CA_BUNDLE override `verify = False`.
        session.trust_env = False
        session.verify = False
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return session


def publish_url(stream: dict) -> str:
    """Where OBS would send this stream: the API's server + stream key."""
    return f"{stream['ingest']['rtmp_server']}/{stream['ingest']['stream_key']}"


def require_offered(condition: bool, what: str) -> None:
    """Skip (never pass) a check the target does not offer."""
    if not condition:
        pytest.skip(f"{NOT_OFFERED}: {what}")
