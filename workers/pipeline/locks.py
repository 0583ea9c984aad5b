"""The per-stream sync lock (Redis): passes of one stream never overlap."""

from __future__ import annotations

import enum
import logging
import time
import uuid

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from studio.media.pipeline import Keys

log = logging.getLogger(__name__)

# Seconds; renewed between upload batches and before the playlist is written,
# so a worker killed mid-pass blocks its stream for this long at most.
LOCK_TTL = 20

# Take the stream's lock only if the stream is dirty, and clear the flag in
# the same step (a trigger after it sees the lock, and the holder's
# `finish_pass` sees its flag). KEYS: lock, dirty. ARGV: token, TTL in ms.
_TAKE = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2])
return 1
"""
# After a pass: dirty again -> clear the flag and keep (renew) the lock, 1,
# or, given the node's set of dirty streams (KEYS[3]), release the lock and
# put the stream back at the set's end, its flag kept, 2; else release it, 0
# (one step: a trigger either comes before and is seen here, or after and
# finds the lock free); -1 if the lock is no longer ours. KEYS: lock, dirty
# [, dirty streams]. ARGV: token, TTL in ms [, now, stream].
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if KEYS[3] and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
  redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[4])
  return 2
end
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
redis.call('DEL', KEYS[1])
return 0
"""


class Finished(enum.Enum):
    DIRTY = 1  # asked for again during the pass: the lock is kept for the next one
    REQUEUED = 2  # asked for again: released, and back in its node's dirty streams
    RELEASED = 0  # clean: the lock is released
    LOST = -1  # the lock expired during the pass (another pass may own the stream)


class DirtyStreamLock(Lock):
    """A stream's sync lock that is taken only while the stream is dirty,
    taking the dirty flag with it (one round trip instead of reading the
    flag, taking the lock, then clearing the flag)."""

    lua_take = None
    lua_finish = None

    def register_scripts(self) -> None:
        super().register_scripts()
        cls = type(self)
        if cls.lua_take is None:
            cls.lua_take = self.redis.register_script(_TAKE)
        if cls.lua_finish is None:
            cls.lua_finish = self.redis.register_script(_FINISH)

    def do_acquire(self, token: bytes) -> bool:
        keys = [self.name, Keys.dirty(self.stream)]
        return bool(
            self.lua_take(keys=keys, args=[token, int(self.timeout * 1000)], client=self.redis)
        )

    @property
    def stream(self) -> str:
        return self.name.removeprefix(Keys.lock(""))


def dirty_stream_lock(connection: redis.Redis, stream: str) -> DirtyStreamLock:
    """The sync lock of `stream`, acquired (without blocking) only while the
    stream is dirty; see `finish_pass`."""
    return connection.lock(Keys.lock(stream), timeout=LOCK_TTL, lock_class=DirtyStreamLock)


def take_dirty(connection: redis.Redis, streams: list[str]) -> list[DirtyStreamLock]:
    """The sync locks of those `streams` that are dirty and not locked,
    taken (the dirty flag with each, as `DirtyStreamLock` does), in one
    round trip. Raises redis errors."""
    held = [dirty_stream_lock(connection, stream) for stream in streams]
    tokens = [uuid.uuid1().hex.encode() for _ in held]
    ttl = int(LOCK_TTL * 1000)
    with connection.pipeline(transaction=False) as pipe:
        for lock, token in zip(held, tokens, strict=True):
            lock.lua_take(keys=[lock.name, Keys.dirty(lock.stream)], args=[token, ttl], client=pipe)
        taken = pipe.execute()
    for lock, token, ok in zip(held, tokens, taken, strict=True):
        if ok:
            lock.local.token = token
            acquired(lock)
    return [lock for lock, ok in zip(held, taken, strict=True) if ok]


def finish_pass(held: list[DirtyStreamLock], node_id: str | None = None) -> list[Finished]:
    """After a pass under each lock of `held` (in one round trip): a stream
    asked for again meanwhile keeps its lock for another pass (its flag is
    cleared), or, given `node_id`, is released and put back at the end of
    that node's dirty streams (so that a group's busy streams do not keep
    the others waiting); else its lock is released; one step for each.
    Raises redis errors."""
    if not held:
        return []
    ttl = int(LOCK_TTL * 1000)
    now = time.time()
    with held[0].redis.pipeline(transaction=False) as pipe:
        for lock in held:
            keys = [lock.name, Keys.dirty(lock.stream)]
            args = [lock.local.token, ttl]
            if node_id is not None:
                keys.append(Keys.dirty_streams(node_id))
                args += [now, lock.stream]
            lock.lua_finish(keys=keys, args=args, client=pipe)
        replies = pipe.execute()
    finished = [Finished(int(reply)) for reply in replies]
    for lock, outcome in zip(held, finished, strict=True):
        if outcome is Finished.DIRTY:
            acquired(lock)
        else:
            lock.local.token = None
            if outcome is Finished.LOST:
                log.warning("sync lock %s expired before release", lock.name)
    return finished


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
