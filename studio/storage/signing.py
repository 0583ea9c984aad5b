"""Cloud CDN signed cookies: made by the studio, checked by the edge.

A private stream's objects are served only to requests carrying a cookie
signed for the stream's URL prefix, in Cloud CDN's format:

    Cloud-CDN-Cookie=URLPrefix=<base64url(prefix)>:Expires=<unix seconds>:
        KeyName=<key name>:Signature=<base64url(HMAC-SHA1(key, policy))>

where `policy` is everything before ":Signature=". In production Cloud CDN
checks it; the development and test edge (nginx `auth_request`) asks the
studio, which checks it here with `verify` — the same code path.
Pure functions: no Flask, no clock of their own (callers pass `now`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

COOKIE_NAME = "Cloud-CDN-Cookie"
# What Cloud CDN accepts as a key: 128 bits, base64url-encoded.
KEY_BYTES = 16


class SigningNotConfigured(Exception):
    """No signing key is set (STUDIO_CDN_SIGNING_KEY_NAME / _KEY)."""


@dataclass(frozen=True)
class SigningKey:
    name: str
    secret: bytes

    @classmethod
    def from_config(cls, config: Mapping) -> SigningKey:
        name = config.get("CDN_SIGNING_KEY_NAME") or ""
        encoded = config.get("CDN_SIGNING_KEY") or ""
        if not name or not encoded:
            raise SigningNotConfigured("STUDIO_CDN_SIGNING_KEY_NAME and _KEY are not set")
        return cls(name, decode_key(encoded))


def decode_key(encoded: str) -> bytes:
    """A base64url key (Cloud CDN's form; padding optional); ValueError if it
    is not 16 bytes."""
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the signing key is not base64url") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"the signing key must be {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _signature(secret: bytes, policy: str) -> str:
    return _b64(hmac.new(secret, policy.encode("ascii"), hashlib.sha1).digest())


def cookie_value(key: SigningKey, url_prefix: str, expires: int) -> str:
    """The cookie's value granting `url_prefix` (a full URL ending in "/")
    until the unix time `expires`."""
    policy = f"URLPrefix={_b64(url_prefix.encode())}:Expires={int(expires)}:KeyName={key.name}"
    return f"{policy}:Signature={_signature(key.secret, policy)}"


def verify(value: str, url: str, keys: list[SigningKey], now: float) -> bool:
    """True if the cookie `value` is well formed, signed by one of `keys`,
    not expired at `now`, and its prefix covers `url`."""
    if not value or len(value) > 2048 or not value.isascii():
        return False
    policy, sep, signature = value.rpartition(":Signature=")
    if not sep:
        return False
    fields = dict(part.partition("=")[::2] for part in policy.split(":"))
    if set(fields) != {"URLPrefix", "Expires", "KeyName"}:
        return False
    key = next((k for k in keys if k.name == fields["KeyName"]), None)
    if key is None or not hmac.compare_digest(_signature(key.secret, policy), signature):
        return False
    try:
        expires = int(fields["Expires"])
        encoded = fields["URLPrefix"]
        prefix = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return now < expires and bool(prefix) and url.startswith(prefix)


def cookie_values(header: str) -> list[str]:
    """Every Cloud-CDN-Cookie value in a Cookie header (a browser sends one
    per matching path). Values hold '=' and ':' but never ';'."""
    values = []
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE_NAME:
            values.append(value.strip().strip('"'))
    return values
