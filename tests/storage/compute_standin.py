"""A stand-in for Google's OAuth token endpoint and the Compute API's
`urlMaps.invalidateCache` (neither can run here), over real HTTP, with a
real service-account key: google-auth signs its assertion with the key, the
stand-in checks the signature and hands out a token, and records each
invalidation it is asked for with the token it came with."""

from __future__ import annotations

import json
import re
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from tests.json_http import JsonHandler

PROJECT = "standin-project"
# What google-auth puts in a service account's assertion, whatever its token_uri.
AUDIENCE = "https://oauth2.googleapis.com/token"
_INVALIDATE = re.compile(r"^/compute/v1/projects/([^/]+)/global/urlMaps/([^/]+)/invalidateCache$")


@dataclass
class Invalidation:
    project: str
    url_map: str
    path: str
    authorization: str


@dataclass
class ComputeStandin:
    url: str
    credentials_file: Path
    tokens: list[str] = field(default_factory=list)
    invalidations: list[Invalidation] = field(default_factory=list)
    refuse_with: int | None = None  # an HTTP status to answer invalidations with


def start(directory: Path) -> tuple[ComputeStandin, ThreadingHTTPServer]:
    """The stand-in on a free port, and a service-account key file for it
    (its token_uri is the stand-in's)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    url = f"http://127.0.0.1:{server.server_port}"
    credentials_file = directory / "service-account.json"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "standin-key",
        "private_key": pem.decode(),
        "client_email": f"studio-workers@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{url}/token",
    }
    credentials_file.write_text(json.dumps(account))
    standin = ComputeStandin(url=url, credentials_file=credentials_file)
    public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server.standin, server.public_key = standin, public_key
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return standin, server


class _Handler(JsonHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        standin: ComputeStandin = self.server.standin
        if self.path == "/token":
            form = urllib.parse.parse_qs(body.decode())
            try:  # the assertion google-auth signed with the account's key
                jwt.decode(form["assertion"][0], certs=self.server.public_key, audience=AUDIENCE)
            except (KeyError, ValueError) as exc:
                return self._reply(400, {"error": "invalid_grant", "error_description": str(exc)})
            token = f"standin-{secrets.token_hex(8)}"
            standin.tokens.append(token)
            return self._reply(200, {"access_token": token, "expires_in": 3600})
        if match := _INVALIDATE.match(self.path):
            path = json.loads(body)["path"]
            authorization = self.headers.get("Authorization", "")
            standin.invalidations.append(Invalidation(*match.groups(), path, authorization))
            if standin.refuse_with:
                return self._reply(standin.refuse_with, {"error": {"message": "refused"}})
            name = f"operation-{len(standin.invalidations)}"
            return self._reply(200, {"kind": "compute#operation", "name": name})
        return self._reply(404, {"error": {"message": f"no such path {self.path}"}})
