"""The sync lock that takes the stream's dirty flag with it."""

from __future__ import annotations

from studio.media.pipeline import Keys
from workers.pipeline import locks

STREAM = "cam_locks"


def test_a_clean_stream_is_not_locked(redis):
    """Without a dirty flag the lock is not taken (nothing to sync)."""
    lock = locks.dirty_stream_lock(redis, STREAM)

    assert not lock.acquire(blocking=False)
    assert redis.get(Keys.lock(STREAM)) is None


def test_taking_the_lock_takes_the_flag(redis):
    """A dirty stream's lock is taken and its flag cleared; a second taker
    leaves the flag of a trigger meanwhile for the holder."""
    redis.set(Keys.dirty(STREAM), 1)
    lock = locks.dirty_stream_lock(redis, STREAM)

    assert lock.acquire(blocking=False)
    assert redis.get(Keys.dirty(STREAM)) is None
    assert 0 < redis.pttl(Keys.lock(STREAM)) <= locks.LOCK_TTL * 1000

    redis.set(Keys.dirty(STREAM), 1)
    assert not locks.dirty_stream_lock(redis, STREAM).acquire(blocking=False)
    assert redis.get(Keys.dirty(STREAM)) == b"1"


def test_a_trigger_during_the_pass_keeps_the_lock_for_another(redis):
    """After a pass: asked for again meanwhile, the holder keeps the lock and
    takes the flag; else the lock is released, and a trigger after that
    finds it free."""
    redis.set(Keys.dirty(STREAM), 1)
    lock = locks.dirty_stream_lock(redis, STREAM)
    assert lock.acquire(blocking=False)
    redis.set(Keys.dirty(STREAM), 1)  # a trigger during the pass

    assert locks.finish_pass([lock]) == [locks.Finished.DIRTY]
    assert redis.get(Keys.dirty(STREAM)) is None
    assert redis.get(Keys.lock(STREAM)) is not None

    assert locks.finish_pass([lock]) == [locks.Finished.RELEASED]
    assert redis.get(Keys.lock(STREAM)) is None


def test_a_lock_lost_during_the_pass_is_left_to_its_new_holder(redis):
    """A lock that expired and was taken by another pass is not released."""
    redis.set(Keys.dirty(STREAM), 1)
    lock = locks.dirty_stream_lock(redis, STREAM)
    assert lock.acquire(blocking=False)
    redis.set(Keys.lock(STREAM), b"another-pass")
    redis.set(Keys.dirty(STREAM), 1)

    assert locks.finish_pass([lock]) == [locks.Finished.LOST]
    assert redis.get(Keys.lock(STREAM)) == b"another-pass"
    assert redis.get(Keys.dirty(STREAM)) == b"1"


def test_a_group_takes_the_locks_of_its_dirty_free_streams_only(redis):
    """In one round trip: a dirty stream's lock is taken with its flag; a
    clean stream's and a locked one's are not (the holder keeps the flag)."""
    redis.set(Keys.dirty("grp_dirty"), 1)
    redis.set(Keys.dirty("grp_held"), 1)
    redis.set(Keys.lock("grp_held"), b"another-pass")

    taken = locks.take_dirty(redis, ["grp_dirty", "grp_clean", "grp_held"])

    assert [lock.stream for lock in taken] == ["grp_dirty"]
    assert redis.get(Keys.dirty("grp_dirty")) is None
    assert redis.get(Keys.dirty("grp_held")) == b"1"
    assert locks.finish_pass(taken) == [locks.Finished.RELEASED]
    assert redis.get(Keys.lock("grp_dirty")) is None


def test_a_drainer_puts_a_stream_asked_for_again_back_in_the_set(redis):
    """Given its node, a stream asked for again during its pass is released
    and put back at the end of the node's dirty streams, its flag kept, so
    that a busy stream does not hold its drainer while others wait."""
    node = "node-locks"
    redis.set(Keys.dirty(STREAM), 1)
    redis.zadd(Keys.dirty_streams(node), {"grp_waiting": 1.0})
    [lock] = locks.take_dirty(redis, [STREAM])
    redis.set(Keys.dirty(STREAM), 1)  # a trigger during the pass

    assert locks.finish_pass([lock], node) == [locks.Finished.REQUEUED]
    assert redis.get(Keys.lock(STREAM)) is None
    assert redis.get(Keys.dirty(STREAM)) == b"1"
    assert redis.zrange(Keys.dirty_streams(node), 0, -1) == [b"grp_waiting", STREAM.encode()]
