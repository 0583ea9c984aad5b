"""ICE servers for browsers publishing over WebRTC: STUN, and TURN with
time-limited credentials in coturn's `use-auth-secret` scheme (the TURN REST
API convention): username `{expiry unix time}:{user id}`, credential
base64(HMAC-SHA1(shared secret, username)). coturn checks the same HMAC with
its `static-auth-secret` and refuses the username once the expiry has passed,
so nothing has to be stored or revoked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping


def turn_credentials(secret: str, user_id: int | str, ttl: int, now: float | None = None) -> dict:
    """A username/credential pair valid for `ttl` seconds from `now`; `user_id`
    names who it was given to (a creator's id, or `viewer-...`)."""
    expiry = int(now if now is not None else time.time()) + ttl
    username = f"{expiry}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"username": username, "credential": base64.b64encode(digest).decode()}


def ice_servers(config: Mapping, user_id: int | str, now: float | None = None) -> list[dict]:
    """RTCPeerConnection `iceServers` for this user; TURN only when configured."""
    servers: list[dict] = []
    if config.get("STUN_URLS"):
        servers.append({"urls": list(config["STUN_URLS"])})
    if config.get("TURN_URLS") and config.get("TURN_SECRET"):
        credentials = turn_credentials(config["TURN_SECRET"], user_id, config["TURN_TTL"], now)
        servers.append({"urls": list(config["TURN_URLS"]), **credentials})
    return servers
