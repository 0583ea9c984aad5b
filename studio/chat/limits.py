"""Chat rate limits and slow mode, counted in Redis so that every socket
process and the API share them.

Rate limits use the `limits` library (the one Flask-Limiter rests on) with
fixed windows: a message costs one INCR per key. Slow mode is one
`SET NX EX` per accepted message. Redis being down lets chat through
(logged): limits protect the service, they are not a rule of the stream.
"""

from __future__ import annotations

import logging
import time

import redis
from limits import parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from studio.chat.rules import ChatRefused

log = logging.getLogger(__name__)
_SLOW_KEY = "studio:chat:slow:{}:{}"


def slow_mode_key(stream: str, participant: str) -> str:
    return _SLOW_KEY.format(stream, participant)


def forget_stream(connection: redis.Redis, stream: str) -> int:
    """Delete a deleted stream's chat state in Redis (slow-mode waits; the
    rate-limit windows are per participant id and expire within seconds).
    Returns how many keys were deleted."""
    keys = list(connection.scan_iter(match=slow_mode_key(stream, "*"), count=500))
    return connection.delete(*keys) if keys else 0


class ChatLimits:
    """The limits of one app: per participant, per address, joins per address."""

    def __init__(self, redis_url: str, participant: str, address: str, joins: str):
        self._storage = RedisStorage(
            redis_url, key_prefix="studio-chat", socket_timeout=2, socket_connect_timeout=2
        )
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._participant = parse(participant)
        self._address = parse(address)
        self._joins = parse(joins)

    def check_message(self, stream: str, participant: str, address: str) -> None:
        """Count a message; raises ChatRefused(rate_limited) over either limit."""
        for item, keys in (
            (self._address, ("address", address)),
            (self._participant, ("participant", stream, participant)),
        ):
            retry = self._hit(item, *keys)
            if retry is not None:
                raise ChatRefused(
                    "rate_limited",
                    "You are sending messages too fast. Wait a moment and try again.",
                    retry,
                )

    def allow_join(self, address: str) -> bool:
        """Count a socket opened from `address`; False over the limit."""
        return self._hit(self._joins, "join", address) is None

    def claim_slow_mode(self, stream: str, participant: str, seconds: int) -> None:
        """Start a participant's slow-mode wait; raises ChatRefused(slow_mode)
        if the previous one has not run out."""
        if seconds <= 0:
            return
        key = slow_mode_key(stream, participant)
        try:
            if self._redis.set(key, 1, nx=True, ex=seconds):
                return
            left = self._redis.ttl(key)
        except redis.RedisError as exc:
            log.warning("chat slow mode unavailable: %s", exc)
            return
        raise ChatRefused(
            "slow_mode",
            f"Slow mode is on: one message every {seconds} seconds.",
            max(left, 1),
        )

    def _hit(self, item, *keys: str) -> float | None:
        """None if allowed, else the seconds until the window resets."""
        try:
            if self._limiter.hit(item, *keys):
                return None
            reset_at = self._limiter.get_window_stats(item, *keys).reset_time
        except redis.RedisError as exc:
            log.warning("chat rate limits unavailable: %s", exc)
            return None
        return max(reset_at - time.time(), 1.0)
