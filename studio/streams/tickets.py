"""Publish tickets: the studio's own ingest relay publishes with one
instead of the stream secret."""

from __future__ import annotations

import hashlib
import secrets

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
