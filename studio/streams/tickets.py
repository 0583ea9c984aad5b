"""Publish tickets: the studio's own ingest relay publishes with one
instead of the stream secret; play grants: its multistream relay plays a
private stream back from the media server with one."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from redis import Redis

# A publish ticket lets the studio's relay publish without the stream secret
# in its RTMP URL, which is on ffmpeg's command line (readable with `ps` by
# any local user): it is useless once redeemed, and expires soon anyway.
PUBLISH_TICKET_TTL = 60  # seconds; the relay's ffmpeg publishes within seconds
_TICKET_KEY = "studio:publish-ticket:{}"
# Redeem for (stream, client): a fresh ticket is bound to the client that
# uses it first; a repeated callback of that same publisher is accepted again.
_REDEEM_TICKET = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
if value == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'KEEPTTL')
    return 1
end
if value == ARGV[1] .. '|' .. ARGV[2] then return 1 end
return 0
"""


def _ticket_key(ticket: str) -> str:
    # Only a digest in Redis: a dump of it yields no usable ticket.
    return _TICKET_KEY.format(hashlib.sha256(ticket.encode()).hexdigest())


def mint_publish_ticket(redis: Redis, stream_name: str, ttl: int = PUBLISH_TICKET_TTL) -> str:
    """A short-lived, single-use credential to publish `stream_name` (for the
    studio's own ingest relay, instead of the stream secret). Raises redis
    errors."""
    ticket = secrets.token_urlsafe(24)
    redis.set(_ticket_key(ticket), stream_name, ex=ttl)
    return ticket


def redeem_publish_ticket(redis: Redis, stream_name: str, ticket: str, client_id: str) -> bool:
    """True if `ticket` was minted for `stream_name` and is unused (or was
    used by this same `client_id`); it can never serve another publisher.
    Raises redis errors."""
    if not ticket or not client_id:
        return False
    key = _ticket_key(ticket)
    return bool(redis.eval(_REDEEM_TICKET, 1, key, stream_name, client_id))


# A play grant lets the studio's multistream relay play a private stream back
# from the media server (SRS asks on_play), where nobody else may: viewers of
# a private stream watch through the studio's signed CDN cookies. The grant is
# on the relay's ffmpeg command line, so it expires soon (each relay attempt
# mints its own); it is an HMAC of the secret key, so no state is kept.
PLAY_GRANT_TTL = 300  # seconds; ffmpeg connects, and SRS asks, within seconds


def mint_play_grant(secret_key: str, stream_name: str, *, now: float | None = None) -> str:
    """`<expiry>.<signature>`: lets its holder play `stream_name` from the
    media server for PLAY_GRANT_TTL seconds."""
    expires = int(time.time() if now is None else now) + PLAY_GRANT_TTL
    return f"{expires}.{_play_signature(secret_key, stream_name, expires)}"


def check_play_grant(
    secret_key: str, stream_name: str, grant: str, *, now: float | None = None
) -> bool:
    """True if `grant` was minted for `stream_name` with `secret_key` and has
    not expired."""
    expires, _, signature = grant.partition(".")
    if not expires.isdigit() or len(expires) > 12 or not signature:
        return False
    if int(expires) < (time.time() if now is None else now):
        return False
    expected = _play_signature(secret_key, stream_name, int(expires))
    return hmac.compare_digest(signature.encode(), expected.encode())


def _play_signature(secret_key: str, stream_name: str, expires: int) -> str:
    message = f"studio-play:{stream_name}:{expires}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()[:32]
