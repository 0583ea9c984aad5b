"""The per-stream sync lock (Redis): passes of one stream never overlap."""

from __future__ import annotations

import logging
import time

from redis.exceptions import LockError

log = logging.getLogger(__name__)

# Seconds; renewed between upload batches and before the playlist is written,
# so a worker killed mid-pass blocks its stream for this long at most.
LOCK_TTL = 20


def acquired(lock) -> None:
    lock.studio_since = time.monotonic()


def still_ours(lock) -> bool:
    """True if the lock is surely still held: recently (re)acquired, or
    renewed now. False if it expired and another pass may own the stream."""
    if time.monotonic() - getattr(lock, "studio_since", 0.0) < LOCK_TTL / 2:
        return True
    try:
        lock.reacquire()
    except LockError:
        log.warning("sync lock %s expired during a pass", lock.name)
        return False
    acquired(lock)
    return True


def release(lock) -> None:
    try:
        lock.release()
    except LockError:
        log.warning("sync lock %s expired before release", lock.name)
